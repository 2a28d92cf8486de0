"""Rebuild tests/ood/: pictures of things that are none of Fashion-MNIST's classes, from three open sources.

Run from the repository root: `python tests/ood/render.py` (needs `npm` and `pip install resvg-py
scikit-image scikit-learn`; none is a project dependency, and no test runs this: the tests and
`bench/ood.py` read the committed PNGs). It writes
- emoji of animals, food, vehicles and objects from the two emoji sets tests/drawings uses (npm
  `fluentui-emoji` 1.3.0 and `openmoji` 17.0.0, fetched with `npm pack`), in every style each set has,
  rendered by resvg at 128×128 with the vendor's transparency, exactly as tests/drawings/render.py does;
- scikit-image's bundled sample photographs whose docstring states a public-domain or CC0 status,
  resized to 128 px on the longest side (LANCZOS), in their own colour mode;
- scikit-learn's bundled handwritten digits (UCI "optical recognition of handwritten digits"): the
  first three of each digit, at their own 8×8, as dark ink on white paper (0..16 → 255..0);
and `labels.csv` (file, source, kind, subject, author). The emoji list was fixed before any model was
measured on it; the output is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "drawings"))

from render import FLUENT_PACKAGE, FLUENT_STYLES, OPENMOJI_PACKAGE, OPENMOJI_STYLES, fetch, openmoji_authors  # noqa: E402
from render import render as render_svg  # noqa: E402

PHOTO_SIDE = 128
#: emoji name (Fluent's file stem) → OpenMoji code: animals, food, vehicles, objects (no garment, nothing worn)
EMOJI: dict[str, tuple[str, str]] = {
    "dog": ("1F415", "animal"),
    "cat": ("1F408", "animal"),
    "horse": ("1F40E", "animal"),
    "fish": ("1F41F", "animal"),
    "bird": ("1F426", "animal"),
    "turtle": ("1F422", "animal"),
    "banana": ("1F34C", "food"),
    "pizza": ("1F355", "food"),
    "hamburger": ("1F354", "food"),
    "carrot": ("1F955", "food"),
    "automobile": ("1F697", "vehicle"),
    "bicycle": ("1F6B2", "vehicle"),
    "airplane": ("2708", "vehicle"),
    "sailboat": ("26F5", "vehicle"),
    "light-bulb": ("1F4A1", "object"),
    "key": ("1F511", "object"),
    "guitar": ("1F3B8", "object"),
    "teapot": ("1FAD6", "object"),
    "scissors": ("2702", "object"),
    "alarm-clock": ("23F0", "object"),
}
#: scikit-image sample → (file in skimage/data, author or source as its docstring gives it)
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut.png", "NASA (public domain)"),
    "camera": ("camera.png", "Lav Varshney (CC0)"),
    "brick": ("brick.png", "CC0Textures (CC0)"),
    "grass": ("grass.png", "CC0Textures (CC0)"),
    "gravel": ("gravel.png", "CC0Textures (CC0)"),
    "text": ("text.png", "public domain"),
    "coins": ("coins.png", "Brooklyn Museum (no known copyright restrictions)"),
    "horse": ("horse.png", "Andreas Preuss (CC0)"),
    "clock": ("clock_motion.png", "Stefan van der Walt (public domain)"),
    "chelsea": ("chelsea.png", "Stefan van der Walt (CC0)"),
    "coffee": ("coffee.png", "Rachel Michetti (CC0)"),
    "hubble-deep-field": ("hubble_deep_field.jpg", "NASA (public domain)"),
    "rocket": ("rocket.jpg", "SpaceX (public domain)"),
    "cell": ("cell.png", "Jochen Guck's lab (CC0)"),
    "retina": ("retina.jpg", "Wikimedia Commons (CC0)"),
    "immunohistochemistry": ("ihc.png", "no known copyright restrictions"),
}
DIGITS_PER_CLASS = 3


def emoji_rows(tmp: Path, out: Path) -> list[list[str]]:
    """Every emoji of EMOJI in every style of both sets, rendered into `out`."""
    fluent, openmoji = fetch(FLUENT_PACKAGE, tmp), fetch(OPENMOJI_PACKAGE, tmp)
    authors = openmoji_authors(openmoji)
    rows = []
    for name, (code, kind) in EMOJI.items():
        for style, folder in FLUENT_STYLES.items():
            file = f"fluent-{style}-{name}.png"
            (out / file).write_bytes(render_svg(fluent / folder / f"{name}.svg"))
            rows.append([file, "fluent", kind, name, "Microsoft"])
        for style, folder in OPENMOJI_STYLES.items():
            file = f"openmoji-{style}-{name}.png"
            (out / file).write_bytes(render_svg(openmoji / folder / f"{code}.svg"))
            rows.append([file, "openmoji", kind, name, authors[code]])
    return rows


def photo_rows(out: Path) -> list[list[str]]:
    """scikit-image's public-domain / CC0 samples, 128 px on the longest side."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    rows = []
    for name, (file, author) in PHOTOS.items():
        with Image.open(folder / file) as img:
            img.load()
            scale = PHOTO_SIDE / max(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img.resize(size, Image.Resampling.LANCZOS).save(out / f"skimage-{name}.png", optimize=True)
        rows.append([f"skimage-{name}.png", "skimage", "photo", name, author])
    return rows


def digit_rows(out: Path) -> list[list[str]]:
    """The first DIGITS_PER_CLASS digits of each class, 8×8, dark ink on white."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = []
    for digit in range(10):
        for n, i in enumerate(np.flatnonzero(digits.target == digit)[:DIGITS_PER_CLASS]):
            pixels = (255 - np.round(digits.images[i] * 255 / 16)).astype(np.uint8)
            file = f"sklearn-digit-{digit}-{n}.png"
            Image.fromarray(pixels, "L").save(out / file, optimize=True)
            rows.append([file, "sklearn", "digit", str(digit), "E. Alpaydin, C. Kaynak (UCI, CC BY 4.0)"])
    return rows


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs and labels.csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = emoji_rows(Path(tmp), args.out) + photo_rows(args.out) + digit_rows(args.out)
    with open(args.out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "source", "kind", "subject", "author"])
        writer.writerows(rows)
    print(f"{len(rows)} images written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
