"""Any image file → the model's 28×28 input, as Fashion-MNIST was made (Pillow + numpy, no torch).

Fashion-MNIST images are product photos on white, trimmed to the object, scaled so the longest
side is 28, centred, and negated: a light garment on a black background. `preprocess` brings any
input to that, and it is the ONE function that `fmnist predict`, the TUI and the server use.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

# the decoders of ALLOWED_FORMATS, registered explicitly (Image.open only knows the formats whose plugin is loaded)
from PIL import (  # noqa: F401 - the *ImagePlugin modules are imported for their side effect (registration)
    BmpImagePlugin,
    ExifTags,
    GifImagePlugin,
    Image,
    ImageFilter,
    JpegImagePlugin,
    MpoImagePlugin,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from ..core.errors import FmnistError

#: The formats accepted, each with the file suffixes that name it: the one list that the decoder,
#: `fmnist predict`'s folder scan and the TUI's file tree all read.
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg"),
    "GIF": (".gif",),
    "BMP": (".bmp",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
    "MPO": (".mpo",),
}
#: Formats accepted.
ALLOWED_FORMATS: tuple[str, ...] = tuple(FORMAT_SUFFIXES)
#: Suffixes of the files a folder scan or a file picker offers (lower case, with the dot).
IMAGE_SUFFIXES: frozenset[str] = frozenset(s for suffixes in FORMAT_SUFFIXES.values() for s in suffixes)
#: Decoders Image.open may try (its others are never tried). MPO (phone cameras' multi-picture
#: JPEG) has no opener of its own: the JPEG decoder recognises it.
_OPENERS: tuple[str, ...] = tuple(f for f in ALLOWED_FORMATS if f != "MPO")
#: Largest image accepted, in pixels (64 MP: above any phone camera); checked from the header, before decoding.
MAX_PIXELS = 64 * 1024 * 1024
#: Memory one image may take to decode. `decode` never holds a big image twice (see `_shrink`), so this is
#: the decoder's own: 4 bytes per pixel for most formats, more where the decoder keeps buffers of its own.
MAX_DECODE_BYTES = 256 * 1024 * 1024
#: Bytes per pixel that decoding takes at most, where it is more than Pillow's 4 of the decoded image:
#: libtiff reads a strip (up to the whole image) of raw samples of up to 8 bytes besides it; Pillow's
#: WebP decoder holds libwebp's two RGBA canvases and a copy of the frame besides it.
DECODE_BYTES_PER_PIXEL = {"TIFF": 12, "WEBP": 16}
#: Largest file accepted, in bytes.
MAX_BYTES = 64 * 1024 * 1024
SIZE = 28
#: Working resolution for the crop: big photos are reduced to this longest side first (speed).
WORK_SIDE = 512
#: An object's peak must stand this far above the background (fraction of full scale).
MIN_CONTRAST = 0.04
#: Line art is told and filled at this side (4× the output: a stroke of a 72-px icon is still 3 px wide).
LINE_ART_SIDE = 4 * SIZE
#: A pixel is ink (part of the drawing) above this brightness, the object's peak being 1.
INK_LEVEL = 0.2
#: An object whose ink covers less than this fraction of its silhouette (the ink and what it encloses)
#: is line art: outlines. Fashion-MNIST's garments are not that hollow: over the 10,000 test images the
#: least inked silhouette is 58% ink (a bag), 1% are under 78%; 5 of the 60,000 training images are under 55%.
LINE_ART_COVER = 0.55
#: What line art encloses is filled at the median brightness of Fashion-MNIST's garment pixels (0.64
#: over the test set), so that a drawn outline reads as the solid garment the model was trained on.
LINE_ART_FILL = 0.64

Source = str | Path | bytes | bytearray


class ImageError(FmnistError):
    """An input that cannot be used as an image; the message is the reason (the caller adds the path)."""


#: The kinds of file that are not read as images (reading them blocks, never ends, or means nothing).
_NOT_REGULAR: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular(mode: int) -> str | None:
    """Why a file of this `st_mode` is not read as an image (a folder, a FIFO, a device, a socket), or None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not an image file"
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
    return f"is {kind}, not a regular file; refused without reading it"


#: open() flags for an image file: a FIFO swapped in after the stat neither blocks the open
#: (O_NONBLOCK) nor, once fstat has seen it, the read; a terminal never becomes ours (O_NOCTTY)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_file(path: str | Path) -> bytes:
    """A regular file's bytes (at most MAX_BYTES); anything else is refused before it is opened for reading.

    Opening a FIFO blocks until a writer comes and reading /dev/zero never ends: the kind is checked
    with stat() first, and again with fstat() on the descriptor, in case the file was swapped meanwhile."""
    try:
        reason = not_regular(os.stat(path).st_mode)
        if reason:
            raise ImageError(reason)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageError("a symbolic link to a missing file" if os.path.lexists(path) else "no such file") from None
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        reason = not_regular(info.st_mode)
        if reason:
            raise ImageError(reason)
        if info.st_size > MAX_BYTES:
            raise ImageError(f"file of {info.st_size:,} bytes is over the {MAX_BYTES:,}-byte limit")
        try:
            return file.read(info.st_size + 1)  # never more than the cap, even from a file that grows meanwhile
        except OSError as exc:
            raise ImageError(f"cannot read the file ({exc.strerror or exc})") from None


def _read(source: Source) -> bytes:
    data = bytes(source) if isinstance(source, (bytes, bytearray)) else _read_file(source)
    if not data:
        raise ImageError("empty file (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{len(data):,} bytes is over the {MAX_BYTES:,}-byte limit")
    return data


def _bomb_error(exc: Exception) -> ImageError:
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"declares {int(found.group(1)):,} pixels" if found else "declares too many pixels"
    return ImageError(f"{declared}, over the cap of {MAX_PIXELS:,}; refused before decoding (shrink the image)")


def pixel_cap(fmt: str | None) -> int:
    """The most pixels an image of this format may declare: MAX_PIXELS, or less where its decoder
    needs more than 4 bytes per pixel, so that decoding stays within MAX_DECODE_BYTES."""
    return min(MAX_PIXELS, MAX_DECODE_BYTES // DECODE_BYTES_PER_PIXEL.get(fmt or "", 4))


def open_header(source: Source, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read an image's header only (no pixel is decoded): allowlisted formats, at most `max_pixels`
    declared (and the format's `pixel_cap`). Raises ImageError with the reason. `decode` does the rest."""
    data = _read(source)
    try:
        with warnings.catch_warnings():
            # Pillow warns (and above twice its limit, raises) on huge headers: both mean "refuse"
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(_OPENERS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc) from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image, or not one of the allowed formats ({', '.join(ALLOWED_FORMATS)})") from None
    except Exception as exc:  # noqa: BLE001 - a malformed header can raise nearly anything inside a decoder
        raise ImageError(f"cannot read the image header ({type(exc).__name__}: {exc})") from None
    width, height = img.size
    cap = min(max_pixels, pixel_cap(img.format))
    if width * height > cap:
        which = f"the {img.format} cap" if cap < min(max_pixels, MAX_PIXELS) else "the cap"
        raise ImageError(
            f"declares {width}×{height} = {width * height:,} pixels, over {which} of {cap:,}; "
            "refused before decoding (shrink the image)"
        )
    if width < 1 or height < 1:
        raise ImageError(f"declares an empty size {width}×{height}")
    return img


def decode(img: Image.Image) -> Image.Image:
    """Decode an image from `open_header`: first frame of an animation, big images brought down to
    between WORK_SIDE and twice that on the longest side, EXIF orientation applied.

    Memory: what the decoder takes (at most MAX_DECODE_BYTES, see `pixel_cap`; a big JPEG is decoded at
    a reduced scale instead) plus a few MiB; nothing at full size is copied or converted."""
    try:
        img.seek(0)  # animated GIF/WebP/TIFF: the first frame
        if img.format in ("JPEG", "MPO"):
            img.draft(img.mode, (WORK_SIDE, WORK_SIDE))  # decode big JPEGs at a reduced scale (fast)
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)  # (the XMP's, if it has one)
        img.load()
        return _orient(_shrink(img), orientation)
    except Exception as exc:  # noqa: BLE001 - likewise for damaged pixel data: one reason line, never a traceback
        raise ImageError(f"cannot decode the image ({exc}); the file is damaged or truncated") from None


def open_image(source: Source) -> Image.Image:
    """Open and decode an image safely (`open_header`, then `decode`). Raises ImageError with the reason."""
    return decode(open_header(source))


#: EXIF orientation → the transposition that displays the image upright (as ImageOps.exif_transpose does)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Image.reduce averages samples, which means nothing for palette indices or 1-bit pixels, and it
#: takes no 16-bit mode: these modes are converted (strip by strip) to one whose samples it averages.
_REDUCIBLE_AS = {"1": "L", "P": "L", "PA": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}
#: Pixels per strip while shrinking: what is converted at once (a few MiB).
_STRIP_PIXELS = 1 << 20


def _orient(img: Image.Image, orientation: object) -> Image.Image:
    method = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return img if method is None else img.transpose(method)


def _shrink(img: Image.Image) -> Image.Image:
    """An image at least twice WORK_SIDE on its longest side → reduced by a whole factor (box average)
    to between WORK_SIDE and twice that; smaller ones as they are.

    Strip by strip, so that no converted copy of a big image exists at once (Pillow's own reduce
    of an RGBA image converts all of it to premultiplied alpha first: another 4 bytes per pixel)."""
    width, height = img.size
    factor = max(width, height) // WORK_SIDE
    if factor < 2:
        return img
    mode = _REDUCIBLE_AS.get(img.mode, img.mode)
    if img.mode == "P" and "transparency" in img.info:
        mode = "RGBA"
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))  # whole boxes per strip
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = img.crop((0, top, width, min(top + rows, height)))
        out.paste(strip.convert(mode).reduce(factor), (0, top // factor))
    return out


def _to_gray(img: Image.Image) -> np.ndarray:
    """Luminance in [0,1] as float32 [H,W], from any mode; transparency composited on a contrasting ground."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        # 16-bit (or 32-bit) samples: scale by the type's range, not by clipping at 255
        scale = 1.0 if img.mode == "F" and arr.max(initial=0) <= 1 else (65535.0 if arr.max(initial=0) > 255 else 255.0)
        clipped: np.ndarray = np.clip(arr / scale, 0, 1)
        return clipped
    has_alpha = img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return np.asarray(img if img.mode == "L" else img.convert("L"), dtype=np.float32) / 255.0
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    gray = np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0
    if alpha.min() >= 1.0:
        return gray
    # the object is what is opaque: put it on white if it is dark, on black if it is light
    weight = alpha.sum()
    object_level = float((gray * alpha).sum() / weight) if weight > 0 else 0.0
    ground = 0.0 if object_level > 0.5 else 1.0
    composed: np.ndarray = gray * alpha + ground * (1.0 - alpha)
    return composed


def _reduce(gray: np.ndarray) -> np.ndarray:
    """Big photos to WORK_SIDE on the longest side first: the result is 28 px, finer detail is noise."""
    height, width = gray.shape
    if max(height, width) <= WORK_SIDE:
        return gray
    scale = WORK_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(gray, "F").resize(size, Image.Resampling.BOX), dtype=np.float32)


def _border(gray: np.ndarray) -> np.ndarray:
    """The pixels of the outer ring (about 2% of the short side, at least 1 px): the background sample."""
    ring = max(1, round(0.02 * min(gray.shape)))
    return np.concatenate([gray[:ring].ravel(), gray[-ring:].ravel(), gray[:, :ring].ravel(), gray[:, -ring:].ravel()])


def _background(border: np.ndarray) -> tuple[float, float]:
    """Level and noise (robust sigma) of the background, from the border's most common grey level.

    The mode, not the median: a garment may cover more than half of the border (wide bags, shirts).
    (np.median's result, computed without its overhead: this runs once per image.)"""
    levels = np.minimum((border * 255 + 0.5).astype(np.intp), 255)
    peak = int(np.bincount(levels, minlength=256).argmax())
    chosen = border[levels == peak]
    level = float(chosen.sum(dtype=np.float32) / np.float32(chosen.size))
    deviation = np.abs(border - level)
    deviation = deviation[deviation < 0.1]
    n, half = deviation.size, deviation.size // 2
    if n - np.count_nonzero(deviation) > half:  # most of the ring sits exactly on the level: no noise
        return level, 0.0
    if n % 2:
        median = float(np.partition(deviation, half)[half])
    else:
        middle = np.partition(deviation, (half - 1, half))
        median = float((middle[half - 1] + middle[half]) / np.float32(2))
    return level, 1.4826 * median


def _remove_background(gray: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Make the background black: negate a light one (as Fashion-MNIST did), subtract its level and noise.

    Returns the image and the mask threshold above which a pixel belongs to the object, or None
    when the image is already in Fashion-MNIST's format (28×28 on an exactly black background)."""
    level, sigma = _background(_border(gray))
    if level > 0.5:
        gray, level = 1.0 - gray, 1.0 - level
    if gray.shape == (SIZE, SIZE) and level == 0.0 and sigma == 0.0:
        return gray.astype(np.float32), None
    threshold = min(level + 3 * sigma, 0.95)
    x = np.clip((gray - threshold) / (1.0 - threshold), 0.0, 1.0).astype(np.float32)
    return x, 2 * sigma / (1.0 - threshold)


def _crop_to_object(x: np.ndarray, mask_level: float) -> np.ndarray:
    """Crop to the object's bounding box, scaled so that its peak is 1 (as Fashion-MNIST's are)."""
    mask_source = x
    longest = max(x.shape)
    if longest >= 2 * SIZE:
        # at this resolution a few-pixel speck is under one output pixel: decide the box on a
        # median-filtered copy so that noise and JPEG ripples do not stretch it
        size = 5 if longest >= 4 * SIZE else 3
        mask_source = np.asarray(Image.fromarray(x, "F").filter(ImageFilter.MedianFilter(size)), dtype=np.float32)
        mask_level = max(mask_level, 2 / 255)
    rows = np.flatnonzero(mask_source.max(axis=1) > mask_level)
    cols = np.flatnonzero(mask_source.max(axis=0) > mask_level)
    peak = float(mask_source.max(initial=0.0))
    if rows.size == 0 or peak < MIN_CONTRAST:
        raise ImageError("no object found: the image is blank or has no contrast with its background")
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return np.clip(x[top:bottom, left:right] / peak, 0.0, 1.0)


def _spread_along_rows(reach: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Every run of free pixels in a row that holds a reached pixel, reached whole."""
    height, width = free.shape
    # each run of free pixels gets an id: the count of blocked pixels before it in its row, made unique per row
    run = np.cumsum(~free, axis=1) + (np.arange(height) * (width + 1))[:, None]
    hit = np.zeros(height * (width + 1), dtype=bool)
    hit[run[reach]] = True
    reached: np.ndarray = hit[run] & free
    return reached


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask and every region it encloses: all that the outside (from the border) cannot reach.

    Runs of free pixels are spread along rows, then columns, until nothing changes: a handful of
    passes for any drawing (each turn of a path to a region costs one), each a few numpy operations."""
    free = ~mask
    reach = np.zeros_like(mask)
    reach[[0, -1], :], reach[:, [0, -1]] = free[[0, -1], :], free[:, [0, -1]]
    while True:
        grown = _spread_along_rows(reach, free)
        grown = _spread_along_rows(grown.T, free.T).T
        if np.array_equal(grown, reach):
            return ~reach
        reach = grown


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float image to (width, height): box average to shrink, bilinear to enlarge."""
    shrink = size[0] * size[1] < x.shape[0] * x.shape[1]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(x, "F").resize(size, method), dtype=np.float32)


def _fill_line_art(crop: np.ndarray) -> np.ndarray:
    """Line art (outlines, as in icons, emoji and sketches) → what its lines enclose filled, as a solid garment.

    Anything else is returned as it is: the test is how much of the object's silhouette is ink
    (LINE_ART_COVER), told at LINE_ART_SIDE whatever the input's size."""
    height, width = crop.shape
    scale = LINE_ART_SIDE / max(height, width)
    small = _resize(crop, (max(1, round(width * scale)), max(1, round(height * scale))))
    ink = np.pad(small > INK_LEVEL, 1)  # a free ring: the outside reaches round an object that touches the crop
    silhouette = _fill_holes(ink)
    if np.count_nonzero(ink) >= LINE_ART_COVER * np.count_nonzero(silhouette):
        return crop
    enclosed = (silhouette & ~ink)[1:-1, 1:-1].astype(np.float32)
    filled: np.ndarray = np.maximum(crop, LINE_ART_FILL * np.clip(_resize(enclosed, (width, height)), 0.0, 1.0))
    return filled


def fit(crop: np.ndarray) -> np.ndarray:
    """Scale the longest side to 28 keeping the aspect ratio, and centre on a black 28×28."""
    height, width = crop.shape
    scale = SIZE / max(height, width)
    size = (min(SIZE, max(1, round(width * scale))), min(SIZE, max(1, round(height * scale))))
    if size != (width, height):
        resized = Image.fromarray(crop, "F").resize(size, Image.Resampling.LANCZOS)
        crop = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    # an odd leftover pixel goes to the top/left margin: that is where Fashion-MNIST's own centring put it
    top, left = (SIZE - crop.shape[0] + 1) // 2, (SIZE - crop.shape[1] + 1) // 2
    out[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return out


def object_crop(img: Image.Image) -> tuple[np.ndarray, bool]:
    """A decoded image → (its object on black, cropped to its box, peak 1, line art filled; True), which `fit`
    frames; or (the image itself; False) when it is already in Fashion-MNIST's format (28×28 on exact black)."""
    gray = _reduce(_to_gray(img))
    x, mask_level = _remove_background(gray)
    if mask_level is None:
        return x, False  # already trimmed, scaled and centred: cropping again could only resample it
    return _fill_line_art(_crop_to_object(x, mask_level)), True


def to_model_input(img: Image.Image) -> np.ndarray:
    """A decoded image → float32 [28,28] in [0,1], light garment on a dark background, like Fashion-MNIST."""
    crop, to_fit = object_crop(img)
    return fit(crop) if to_fit else crop


def preprocess(source: Source) -> np.ndarray:
    """A file path or encoded bytes → the model's float32 [28,28] input. Raises ImageError with the reason."""
    return to_model_input(open_image(source))
