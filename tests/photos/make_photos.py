"""Rebuild tests/photos/: product-style photos drawn with Pillow, and test-set images made photo-like.

Run from the repository root: `python tests/photos/make_photos.py` (needs the real dataset for the
second kind). The output is deterministic (fixed seeds) and committed; see README.md for what each
file is and its licence.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from fmnist_tui.core.data import CLASSES, load_dataset  # noqa: E402 - after sys.path points at the repository

W, H = 640, 480


def backdrop(rng: np.random.Generator, tone: int = 244) -> Image.Image:
    """An off-white studio backdrop: a soft vertical light fall-off and sensor noise."""
    y = np.linspace(0, 1, H)[:, None]
    base = tone - 10 * y + rng.normal(0, 1.5, (H, W))
    return Image.fromarray(np.clip(np.repeat(base[..., None], 3, 2), 0, 255).astype(np.uint8), "RGB")


def shade(mask: Image.Image, colour: tuple[int, int, int], rng: np.random.Generator) -> Image.Image:
    """Fill a mask with a colour lit from the top left, with a little fabric texture."""
    yy, xx = np.mgrid[0:H, 0:W]
    light = 1.1 - 0.35 * (0.6 * yy / H + 0.4 * xx / W)
    texture = rng.normal(0, 0.03, (H, W))
    rgb = np.clip(np.array(colour)[None, None, :] * (light + texture)[..., None], 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def paste(
    bg: Image.Image,
    polygons: list[list[tuple[float, float]]],
    colour: tuple[int, int, int],
    rng: np.random.Generator,
    details: list | None = None,
    ellipses: list | None = None,
) -> Image.Image:
    """Composite a garment (polygons, optional ellipses) onto the backdrop with a soft shadow."""
    mask = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(mask)
    for poly in polygons:
        d.polygon(poly, fill=255)
    for box in ellipses or []:
        d.ellipse(box, fill=255)
    shadow = mask.filter(ImageFilter.GaussianBlur(9)).point(lambda v: v * 0.35)
    dark = Image.new("RGB", (W, H), (120, 120, 120))
    out = Image.composite(dark, bg, shadow.transform((W, H), Image.Transform.AFFINE, (1, 0, -6, 0, 1, -8)))
    out = Image.composite(shade(mask, colour, rng), out, mask.filter(ImageFilter.GaussianBlur(0.8)))
    if details:
        dd = ImageDraw.Draw(out)
        for kind, xy, fill, width in details:
            getattr(dd, kind)(xy, fill=fill, width=width)
    return out


def _tee(long_sleeves: bool, bottom: int = 400) -> list[tuple[float, float]]:
    """A top seen from the front: short sleeves (T-shirt) or long ones (pullover, shirt, coat)."""
    left = [(290, 80), (220, 95)]
    left += [(140, 330), (150, 385), (188, 390), (226, 190)] if long_sleeves else [(150, 165), (188, 205), (226, 172)]
    left += [(228, bottom)]
    right = [(640 - x, y) for x, y in reversed(left)]
    return left + right + [(320, 108)]


def drawn(kind: str, rng: np.random.Generator) -> Image.Image:
    """One garment of `kind`, drawn as a flat-lay product photo on an off-white backdrop."""
    bg = backdrop(rng)
    dark = (40, 40, 45)
    if kind == "T-shirt/top":
        return paste(bg, [_tee(False)], (30, 60, 140), rng)
    if kind == "Pullover":
        return paste(
            bg, [_tee(True)], (150, 40, 40), rng, details=[("line", [(228, 385), (412, 385)], (110, 25, 25), 6)]
        )
    if kind == "Coat":
        return paste(
            bg,
            [_tee(True, bottom=440)],
            (150, 115, 70),
            rng,
            details=[
                ("line", [(320, 110), (320, 440)], (90, 65, 35), 4),
                ("line", [(290, 82), (320, 170), (350, 82)], (90, 65, 35), 5),
            ]
            + [("ellipse", [(306, y), (318, y + 12)], dark, 1) for y in (180, 240, 300, 360)],
        )
    if kind == "Shirt":
        stripes = [("line", [(x, 100), (x, 400)], (200, 200, 230), 3) for x in range(236, 410, 22)]
        return paste(
            bg,
            [_tee(True)],
            (90, 110, 170),
            rng,
            details=[
                *stripes,
                ("polygon", [(288, 80), (320, 120), (300, 130), (275, 95)], (230, 230, 240), 1),
                ("polygon", [(352, 80), (320, 120), (340, 130), (365, 95)], (230, 230, 240), 1),
            ],
        )
    if kind == "Trouser":
        legs = [(255, 45), (385, 45), (395, 440), (338, 440), (320, 175), (302, 440), (245, 440)]
        return paste(bg, [legs], (50, 60, 80), rng, details=[("line", [(255, 60), (385, 60)], (30, 35, 50), 5)])
    if kind == "Dress":
        body = [(285, 70), (355, 70), (350, 200), (445, 435), (195, 435), (290, 200)]
        return paste(
            bg,
            [body],
            (170, 40, 90),
            rng,
            details=[
                ("line", [(290, 70), (283, 35)], (170, 40, 90), 6),
                ("line", [(350, 70), (357, 35)], (170, 40, 90), 6),
            ],
        )
    if kind == "Sneaker":
        upper = [(110, 300), (130, 272), (250, 250), (330, 222), (470, 226), (500, 290), (505, 312), (108, 318)]
        sole = [(100, 310), (510, 305), (512, 335), (105, 340)]
        out = paste(bg, [upper], (60, 60, 65), rng)
        out = paste(out, [sole], (225, 225, 225), rng)
        return out
    if kind == "Ankle boot":
        boot = [
            (95, 380),
            (120, 335),
            (255, 300),
            (295, 120),
            (455, 115),
            (470, 330),
            (490, 385),
            (490, 415),
            (95, 415),
        ]
        return paste(bg, [boot], (85, 50, 30), rng, details=[("line", [(300, 125), (285, 300)], (55, 30, 15), 5)])
    if kind == "Sandal":
        sole = [(105, 370), (505, 360), (510, 385), (100, 392)]
        straps = [
            [(140, 372), (170, 320), (190, 322), (165, 372)],
            [(230, 368), (260, 300), (285, 302), (258, 368)],
            [(330, 366), (350, 280), (380, 280), (370, 364)],
            [(420, 362), (440, 250), (470, 252), (460, 362)],
        ]
        return paste(bg, [sole, *straps], (120, 75, 40), rng)
    if kind == "Bag":
        body = [(170, 200), (470, 200), (495, 425), (145, 425)]
        out = paste(bg, [body], (110, 30, 30), rng, details=[("line", [(170, 240), (470, 240)], (80, 20, 20), 4)])
        ImageDraw.Draw(out).arc([(235, 85), (405, 300)], 180, 360, fill=(80, 20, 20), width=16)
        return out
    raise ValueError(kind)


def photo_from_test_image(
    img28: np.ndarray, tint: tuple[int, int, int], rng: np.random.Generator, height: int = 300
) -> Image.Image:
    """A Fashion-MNIST test image as a product photo: negated back to a garment on white, coloured,
    enlarged, placed off-centre on an off-white backdrop with noise (JPEG is applied when saving)."""
    garment = 1.0 - img28.astype(np.float32) / 255.0  # back to dark-on-white, as photographed
    rgb = 255 - (255 - np.array(tint, np.float32)) * (1 - garment[..., None])  # darker where the garment is
    big = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB").resize((height, height), Image.Resampling.BICUBIC)
    alpha = Image.fromarray(((img28 > 0) * 255).astype(np.uint8)).resize((height, height), Image.Resampling.BICUBIC)
    bg = backdrop(rng)
    x, y = int(rng.integers(40, W - height - 40)), int(rng.integers(20, H - height - 20))
    bg.paste(big, (x, y), alpha.filter(ImageFilter.GaussianBlur(1)))
    noisy = np.asarray(bg, np.float32) + rng.normal(0, 3, (H, W, 1))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def save_jpeg(img: Image.Image, path: Path, quality: int = 80, **kwargs: object) -> None:
    img.save(path, "JPEG", quality=quality, **kwargs)


def variants(photo: Image.Image, name: str) -> dict[str, bytes]:
    """The same photo in the awkward encodings the predictor must handle."""
    out: dict[str, bytes] = {}
    # EXIF orientation 6: pixels stored rotated, the tag says "rotate 90° clockwise to display"
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    photo.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=85, exif=exif.tobytes())
    out[f"{name}-exif-rotated.jpg"] = buf.getvalue()
    # transparent background (a cut-out product shot), RGBA PNG
    gray = np.asarray(photo.convert("L"), np.float32)
    alpha = np.clip((215 - gray) * 8, 0, 255).astype(np.uint8)  # the backdrop (≥ 224) becomes fully transparent
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    out[f"{name}-transparent.png"] = buf.getvalue()
    # 16-bit grayscale PNG
    buf = io.BytesIO()
    Image.fromarray((gray * 257).astype(np.uint16)).save(buf, "PNG")
    out[f"{name}-16bit.png"] = buf.getvalue()
    # CMYK JPEG (print workflows)
    buf = io.BytesIO()
    photo.convert("CMYK").save(buf, "JPEG", quality=85)
    out[f"{name}-cmyk.jpg"] = buf.getvalue()
    # animated GIF (palette mode): the garment first, then a blank frame
    buf = io.BytesIO()
    frames = [photo.convert("P", palette=Image.Palette.ADAPTIVE), Image.new("RGB", photo.size, "white").convert("P")]
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    out[f"{name}-animated.gif"] = buf.getvalue()
    return out


#: Test-set indices, two per class: the first of each class that a cnn-k3 (default recipe) classifies
#: right with probability ≥ 0.7 as a 28×28 tensor, so these files test the photo pipeline, not the model.
TEST_INDICES = {
    0: (19, 35),
    1: (2, 3),
    2: (1, 20),
    3: (13, 33),
    4: (10, 14),
    5: (8, 11),
    6: (7, 44),
    7: (9, 12),
    8: (18, 30),
    9: (0, 28),
}
TINTS = [(30, 60, 140), (150, 40, 40), (60, 60, 65), (170, 40, 90), (40, 110, 60), (120, 75, 40)]
VARIANT_OF = {1: "Trouser", 7: "Sneaker", 8: "Bag"}  # classes whose first photo also gets the awkward encodings


def slug(label: str) -> str:
    return label.lower().replace("/", "-").replace(" ", "-")


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    for c, label in enumerate(CLASSES):
        if label == "Coat":
            continue  # see README.md: our drawn coats were read as pullovers/shirts, so none is shipped
        name = f"drawn-{slug(label)}.jpg"
        save_jpeg(drawn(label, np.random.default_rng(100 + c)), HERE / name, quality=85)
        rows.append((name, label, "drawn"))
    ds = load_dataset()
    for c, label in enumerate(CLASSES):
        for j, index in enumerate(TEST_INDICES[c]):
            rng = np.random.default_rng(1000 * c + j)
            photo = photo_from_test_image(ds.test_images[index], TINTS[(c + j) % len(TINTS)], rng)
            name = f"test{index:04d}-{slug(label)}.jpg"
            save_jpeg(photo, HERE / name)
            rows.append((name, label, f"test image {index}"))
            if j == 0 and c in VARIANT_OF:
                for vname, data in variants(photo, f"test{index:04d}-{slug(label)}").items():
                    (HERE / vname).write_bytes(data)
                    rows.append((vname, label, f"test image {index}, {vname.rsplit('-', 1)[-1].split('.')[0]}"))
    with open(HERE / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("file", "label", "source"))
        writer.writerows(rows)
    print(f"wrote {len(rows)} photos and labels.csv to {HERE}")


if __name__ == "__main__":
    main()
