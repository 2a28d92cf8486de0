"""The one preprocessing function: safe opening, every image mode, background, crop, fit, centre."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist_tui.inference import preprocess as preprocess_module
from fmnist_tui.inference.preprocess import (
    LINE_ART_FILL,
    MAX_DECODE_BYTES,
    MAX_PIXELS,
    WORK_SIDE,
    ImageError,
    _fill_holes,
    open_image,
    pixel_cap,
    preprocess,
    to_model_input,
)
from tests.conftest import ROOT


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height pixels but holds no pixel data (a decompression-bomb probe)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def big_rgba_png(side: int) -> bytes:
    """A side×side RGBA PNG, white with a dark garment in the middle, compressed to a few hundred KB;
    written row by row (each row "Up"-filtered against the previous), so making it takes little memory."""
    white, dark = b"\xff\xff\xff\xff", b"\x3c\x3c\x50\xff"
    plain = white * side
    garment = white * (side // 4) + dark * (side // 2) + white * (side - side // 4 - side // 2)
    zipper = zlib.compressobj(6)
    parts = [zipper.compress(b"\x00" + plain)]
    same = b"\x02" + bytes(4 * side)  # filter Up, no difference: a row equal to the one above
    for y in range(1, side):
        garment_row = side // 5 <= y < 4 * side // 5
        changed = garment_row != (side // 5 <= y - 1 < 4 * side // 5)
        parts.append(zipper.compress(b"\x00" + (garment if garment_row else plain) if changed else same))
    parts.append(zipper.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")
    )


def encode(img: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def garment(
    size: tuple[int, int] = (200, 150),
    box: tuple[int, int, int, int] = (60, 30, 120, 130),
    light_background: bool = True,
) -> np.ndarray:
    """A uint8 photo: a dark shaded rectangle (the garment) on white, or its negative."""
    img = np.full((size[1], size[0]), 250, np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = np.linspace(40, 90, x1 - x0, dtype=np.uint8)[None, :]
    return img if light_background else 255 - img


def bbox(x: np.ndarray, level: float = 0.05) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(x.max(1) > level), np.flatnonzero(x.max(0) > level)
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


# --- opening ----------------------------------------------------------------------------------


def test_refuses_empty_text_and_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not an image\n")
    noisy = np.random.default_rng(0).integers(0, 256, (150, 200), dtype=np.uint8)
    whole = encode(Image.fromarray(noisy))
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match="empty file"):
        open_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="not an image"):
        open_image(tmp_path / "text.png")
    with pytest.raises(ImageError, match="truncated"):
        open_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "missing.png")


@pytest.mark.parametrize("side", [20000, 9000])
def test_pixel_cap_refuses_before_decoding(side: int) -> None:
    # 20000² is caught by Pillow's own bomb check, 9000² (81 MP) by ours: both before any pixel is decoded
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageError, match="refused before decoding"):
        open_image(png_header_only(side, side))


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: a blocked open() or read() is interrupted by SIGALRM, and the test fails
    (pytest.fail's exception is no OSError, so the code under test cannot catch it as a read error)."""

    def expire(signum: int, frame: object) -> None:
        pytest.fail(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refusal(path: str | Path) -> str:
    with deadline(10), pytest.raises(ImageError) as info:
        open_image(path)
    return str(info.value)


def test_fifo_device_socket_and_broken_link_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would wait for a writer forever
    assert refusal(tmp_path / "pipe.png") == "is a named pipe (FIFO), not a regular file; refused without reading it"
    assert refusal("/dev/zero").startswith("is a character device, not a regular file")  # reading it never ends
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.png"))
        assert refusal(tmp_path / "sock.png").startswith("is a socket, not a regular file")
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")
    assert refusal(tmp_path / "gone.png") == "a symbolic link to a missing file"
    assert refusal(tmp_path) == "is a folder, not an image file"


def test_a_fifo_swapped_in_after_the_check_does_not_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    regular, fifo = tmp_path / "a.png", tmp_path / "b.png"
    regular.write_bytes(encode(Image.fromarray(garment())))
    os.mkfifo(fifo)
    real_stat = os.stat
    # the check sees a regular file; by the time the file is opened, it is a FIFO
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: real_stat(regular if str(p) == str(fifo) else p, *a, **k))
    assert "named pipe (FIFO)" in refusal(fifo)


def test_only_allowlisted_formats_are_opened() -> None:
    tga = encode(Image.fromarray(garment()), "TGA")  # a format Pillow can read, but not on the allowlist
    with pytest.raises(ImageError, match="allowed formats"):
        open_image(tga)
    assert open_image(encode(Image.fromarray(garment()), "BMP")).size == (200, 150)


def test_formats_whose_decoders_take_more_memory_have_lower_caps() -> None:
    assert pixel_cap("PNG") == pixel_cap("JPEG") == MAX_PIXELS
    assert pixel_cap("TIFF") * 12 <= MAX_DECODE_BYTES and pixel_cap("WEBP") * 16 <= MAX_DECODE_BYTES
    webp = encode(Image.new("L", (4200, 4200), 255), "WEBP", lossless=True)  # 17.6 M pixels: over WebP's 16 Mi
    with pytest.raises(ImageError, match=f"over the WEBP cap of {pixel_cap('WEBP'):,}; refused before decoding"):
        open_image(webp)


_PEAK_RSS = """
import json, resource, sys, time
from fmnist_tui.inference.preprocess import preprocess
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
x = preprocess(sys.argv[1])
seconds = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"kib": after - before, "seconds": seconds, "peak": float(x.max())}))
"""


@pytest.mark.slow
def test_a_64_megapixel_png_decodes_within_the_memory_bound(tmp_path: Path) -> None:
    """8192×8192 RGBA (the pixel cap, 256 MiB decoded) from a ~300 KB file: the peak RSS grows by the
    decoder's 4 bytes per pixel and little more (it was ~1.8 GB: copies and float conversions at full size)."""
    path = tmp_path / "big.png"
    path.write_bytes(big_rgba_png(8192))
    assert Image.open(path).size == (8192, 8192) and path.stat().st_size < 1_000_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    grown_mib = result["kib"] / 1024  # ru_maxrss is in KiB on Linux
    # the bound docs/export-predict-serve.md states, plus working room
    assert grown_mib <= MAX_DECODE_BYTES / 2**20 + 32, result
    assert result["peak"] == pytest.approx(1.0)  # and the garment was found


@pytest.mark.parametrize("mode", ["L", "P", "P transparent", "1", "I;16", "RGBA cut-out", "LA", "CMYK"])
def test_big_images_are_shrunk_in_every_mode(mode: str) -> None:
    """An image of over twice WORK_SIDE is reduced before any full-size conversion: same result as a small one."""
    small, big = garment(), garment((2400, 1800), (720, 360, 1440, 1560))  # the same picture, 12× the side
    images = {}
    for name, array in (("small", small), ("big", big)):
        base = Image.fromarray(array)
        alpha = Image.fromarray(np.where(array < 200, 255, 0).astype(np.uint8))
        images[name] = {
            "L": base,
            "P": base.convert("P"),
            "P transparent": base.convert("P"),
            "1": base.point(lambda v: 255 if v > 128 else 0).convert("1"),
            "I;16": Image.fromarray(array.astype(np.uint16) * 257),
            "RGBA cut-out": Image.merge("RGBA", (base, base, base, alpha)),
            "LA": Image.merge("LA", (base, alpha)),
            "CMYK": base.convert("CMYK"),
        }[mode]
    options = {"transparency": 250} if mode == "P transparent" else {}
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    big_image = open_image(encode(images["big"], fmt, **options))
    assert WORK_SIDE <= max(big_image.size) < 2 * WORK_SIDE
    x, reference = (
        preprocess(encode(images["big"], fmt, **options)),
        preprocess(encode(images["small"], fmt, **options)),
    )
    assert np.abs(np.subtract(bbox(x, 0.3), bbox(reference, 0.3))).max() <= 1
    assert np.corrcoef(x.ravel(), reference.ravel())[0, 1] > 0.95


def test_exif_orientation_is_applied_to_a_shrunk_image() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(garment((2400, 1800), (720, 360, 1440, 1560))).transpose(Image.Transpose.ROTATE_90)
    for fmt in ("JPEG", "PNG"):
        img = open_image(encode(stored, fmt, exif=exif.tobytes()))
        assert img.size[0] > img.size[1] and max(img.size) < 2 * WORK_SIDE, fmt  # upright: wider than tall


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; display needs a 90° clockwise turn
    stored = Image.fromarray(garment((200, 150))).transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (150, 200)
    img = open_image(encode(stored, "JPEG", exif=exif.tobytes()))
    assert img.size == (200, 150)


def test_first_frame_of_an_animation() -> None:
    frames = [Image.fromarray(garment()).convert("P"), Image.new("L", (200, 150), 250).convert("P")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2
    x = preprocess(data)
    assert x.max() > 0.99  # a blank second frame would have no object at all


# --- to the model's input ---------------------------------------------------------------------


def test_output_contract_and_light_background_inverted() -> None:
    x = preprocess(encode(Image.fromarray(garment())))
    assert x.dtype == np.float32 and x.shape == (28, 28)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x[0, 0] == 0.0 and x[14, 14] > 0.5  # light garment on black, like Fashion-MNIST


def test_crop_fit_and_centre() -> None:
    # a 60×100 object in the corner of a 200×150 photo: longest side → 28, centred
    x = preprocess(encode(Image.fromarray(garment(box=(5, 5, 65, 105)))))
    top, bottom, left, right = bbox(x)
    assert bottom - top == 28
    assert abs((left + right) / 2 - 14) <= 1
    assert 15 <= right - left <= 18  # 60/100 of 28 ≈ 17: aspect ratio kept


def test_dark_background_not_inverted() -> None:
    light_on_dark = preprocess(encode(Image.fromarray(garment(light_background=False))))
    dark_on_light = preprocess(encode(Image.fromarray(garment())))
    assert np.corrcoef(light_on_dark.ravel(), dark_on_light.ravel())[0, 1] > 0.99


def all_modes() -> dict[str, bytes]:
    base = Image.fromarray(garment())
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(garment() < 200, 255, 0).astype(np.uint8)))
    return {
        "L": encode(base),
        "RGB": encode(base.convert("RGB"), "JPEG", quality=95),
        "P": encode(base.convert("P")),
        "1": encode(base.point(lambda v: 255 if v > 128 else 0).convert("1")),
        "RGBA cut-out": encode(rgba),
        "LA": encode(rgba.convert("LA")),
        "I;16": encode(Image.fromarray(garment().astype(np.uint16) * 257)),
        "CMYK": encode(base.convert("CMYK"), "JPEG", quality=95),
        "TIFF": encode(base, "TIFF"),
        "WEBP": encode(base, "WEBP", lossless=True),
    }


@pytest.mark.parametrize("mode", list(all_modes()))
def test_every_mode_gives_the_same_input(mode: str) -> None:
    reference = preprocess(all_modes()["L"])
    x = preprocess(all_modes()[mode])
    assert x.shape == (28, 28)
    # lossy encodings (JPEG) may move an edge by one pixel
    assert np.abs(np.subtract(bbox(x, 0.3), bbox(reference, 0.3))).max() <= 1
    assert np.corrcoef(x.ravel(), reference.ravel())[0, 1] > 0.9


def test_light_cut_out_on_transparency_is_not_lost() -> None:
    # a white garment on a transparent background: composited on black, not on white
    rgba = np.zeros((100, 80, 4), np.uint8)
    rgba[20:80, 20:60] = (245, 245, 245, 255)
    x = preprocess(encode(Image.fromarray(rgba, "RGBA")))
    assert x.max() == pytest.approx(1.0) and x[0, 0] == 0.0


def test_noisy_jpeg_photo_keeps_the_object_box() -> None:
    rng = np.random.default_rng(0)
    clean = garment((600, 450), (200, 90, 380, 390))
    noisy = np.clip(clean + rng.normal(0, 4, clean.shape), 0, 255).astype(np.uint8)
    x_clean = preprocess(encode(Image.fromarray(clean)))
    x_noisy = preprocess(encode(Image.fromarray(noisy), "JPEG", quality=70))
    assert bbox(x_noisy, 0.3) == bbox(x_clean, 0.3)
    assert np.abs(x_noisy - x_clean).mean() < 0.03


def test_blank_image_is_an_error() -> None:
    with pytest.raises(ImageError, match="no object found"):
        preprocess(encode(Image.new("L", (64, 64), 240)))


def test_path_and_bytes_agree(tmp_path: Path) -> None:
    data = encode(Image.fromarray(garment()))
    (tmp_path / "a.png").write_bytes(data)
    assert np.array_equal(preprocess(tmp_path / "a.png"), preprocess(data))
    assert np.array_equal(preprocess(str(tmp_path / "a.png")), to_model_input(open_image(data)))


def test_fashion_mnist_format_round_trips_exactly() -> None:
    # a 28×28 image on a black background is already the model's input: PNG → preprocess is lossless
    rng = np.random.default_rng(1)
    img = np.zeros((28, 28), np.uint8)
    img[2:26, 6:22] = rng.integers(30, 256, (24, 16))
    assert np.array_equal(preprocess(encode(Image.fromarray(img))), img.astype(np.float32) / 255.0)


@pytest.mark.realdata
def test_test_set_pngs_round_trip_to_the_tensor_input() -> None:
    from fmnist_tui.core.data import load_dataset

    images = load_dataset().test_images[:2000]
    xs = np.stack([preprocess(encode(Image.fromarray(im))) for im in images])
    same = np.all(xs == images.astype(np.float32) / 255.0, axis=(1, 2))
    # a handful have a non-black border (the object touches it): they take the general path
    assert same.mean() >= 0.995, f"{(~same).sum()} of {len(images)} differ"


@pytest.mark.slow
def test_preprocess_module_imports_no_torch() -> None:
    import subprocess

    code = "import sys, fmnist_tui.inference.preprocess, fmnist_tui.inference.session; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- line art ---------------------------------------------------------------------------------


def outline(size: int = 200, box: tuple[int, int, int, int] = (50, 30, 150, 170), width: int = 4) -> np.ndarray:
    """A uint8 drawing: a dark rectangle outline `width` px wide on white (line art, as icons are drawn)."""
    img = np.full((size, size), 255, np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 30
    img[y0 + width : y1 - width, x0 + width : x1 - width] = 255
    return img


def test_line_art_is_filled_as_a_solid_garment() -> None:
    x = preprocess(encode(Image.fromarray(outline())))
    inside = x[6:22, 6:22]  # well within the outline
    assert inside.min() == pytest.approx(LINE_ART_FILL, abs=0.02)  # filled, not the black it enclosed
    assert x.max() > 0.9  # the lines stay the brightest
    assert x[0, 0] == 0.0  # and the outside stays background


def test_a_solid_garment_and_a_bag_handle_are_not_filled(monkeypatch: pytest.MonkeyPatch) -> None:
    bag = np.full((200, 200), 250, np.uint8)
    bag[80:180, 30:170] = 60  # the body
    bag[20:80, 70:130] = 60  # the handle, with its hole: background, as in Fashion-MNIST's bags
    bag[35:80, 85:115] = 250
    images = [encode(Image.fromarray(img)) for img in (garment(), bag)]
    filled = [preprocess(data) for data in images]
    monkeypatch.setattr(preprocess_module, "_fill_line_art", lambda crop: crop)
    assert all(np.array_equal(x, preprocess(data)) for x, data in zip(filled, images, strict=True))
    assert filled[1][5, 14] < 0.1  # the handle's hole is still empty (not LINE_ART_FILL)


def test_fill_holes_fills_what_the_border_cannot_reach() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((30, 40)) < rng.uniform(0.2, 0.7)
        expected = mask.copy()  # reference: flood the free pixels from the border, one step at a time
        reach = np.zeros_like(mask)
        reach[[0, -1], :], reach[:, [0, -1]] = ~mask[[0, -1], :], ~mask[:, [0, -1]]
        while True:
            grown = reach.copy()
            grown[1:] |= reach[:-1]
            grown[:-1] |= reach[1:]
            grown[:, 1:] |= reach[:, :-1]
            grown[:, :-1] |= reach[:, 1:]
            grown &= ~mask
            if np.array_equal(grown, reach):
                break
            reach = grown
        expected = ~reach
        assert np.array_equal(_fill_holes(mask), expected)
