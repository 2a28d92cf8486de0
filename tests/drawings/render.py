"""Rebuild tests/drawings/: every garment emoji of two open emoji sets, rendered once to 128-px PNG.

Run from the repository root: `python tests/drawings/render.py` (needs `npm` and `pip install resvg-py`;
neither is a project dependency, and no test runs this: the tests read the committed PNGs). It fetches
the two npm packages at pinned versions with `npm pack` into a temporary folder, renders each SVG of
the list below in every style the set has, at 128×128 with the transparency the vendor gives (no
background is added), and writes `labels.csv`. The output is deterministic; see README.md for what
is in the set, what was left out and why, and the licences.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIDE = 128
FLUENT_PACKAGE = "fluentui-emoji@1.3.0"  # Microsoft's Fluent Emoji SVGs, repackaged (MIT)
OPENMOJI_PACKAGE = "openmoji@17.0.0"  # OpenMoji (CC BY-SA 4.0)
#: style name in labels.csv → folder inside the package (Fluent's "Color" style is its `modern/` folder)
FLUENT_STYLES = {"color": "icons/modern", "flat": "icons/flat", "high-contrast": "icons/high-contrast"}
OPENMOJI_STYLES = {"color": "color/svg", "black": "black/svg"}

# Accepted classes (Fashion-MNIST's names, `|`-separated). The rules, applied the same to every emoji:
# a top that may be read as either top class (a blouse, a polo) accepts both; a low shoe that is
# neither a sneaker nor a sandal accepts both low-shoe classes (Fashion-MNIST has no third); a robe
# accepts Coat and Dress; anything carried is a Bag. A drawing of something no class covers is `none`: the
# safety vest (sleeveless, open, worn over clothes) and Fluent's necktie (a square shirt front with a tie, no
# garment's outline); OpenMoji draws the necktie on a whole shirt, collar and shoulders, so that one is a Shirt.
TOP_OR_SHIRT = "T-shirt/top|Shirt"
LOW_SHOE = "Sneaker|Sandal"
#: a drawing that shows none of the ten classes: it counts for "unsure" (bench/ood.py), never for accuracy
NONE = "none"


@dataclass(frozen=True)
class Emoji:
    """One emoji: its name (the file stem), its Fluent file stem, its OpenMoji code and accepted classes."""

    name: str
    fluent: str | None
    openmoji: str
    accepted: str
    #: where OpenMoji draws it so that another class fits too (its t-shirt is a polo with a collar)
    openmoji_accepted: str | None = None


EMOJI: tuple[Emoji, ...] = (
    Emoji("t-shirt", "t-shirt", "1F455", "T-shirt/top", openmoji_accepted=TOP_OR_SHIRT),
    Emoji("running-shirt", "running-shirt", "1F3BD", "T-shirt/top"),  # a tank top
    Emoji("womans-clothes", "womans-clothes", "1F45A", TOP_OR_SHIRT),  # a blouse
    Emoji("necktie", "necktie", "1F454", NONE, openmoji_accepted="Shirt"),  # Fluent: a shirt front; OpenMoji: a shirt
    Emoji("safety-vest", "safety-vest", "1F9BA", NONE),  # sleeveless, open, worn over clothes: no class
    Emoji("coat", "coat", "1F9E5", "Coat"),
    Emoji("lab-coat", "lab-coat", "1F97C", "Coat"),
    Emoji("kimono", "kimono", "1F458", "Coat|Dress"),
    Emoji("dress", "dress", "1F457", "Dress"),
    Emoji("sari", "sari", "1F97B", "Dress"),
    Emoji("jeans", "jeans", "1F456", "Trouser"),
    Emoji("shorts", "shorts", "1FA73", "Trouser"),
    Emoji("purse", "purse", "1F45B", "Bag"),
    Emoji("handbag", "handbag", "1F45C", "Bag"),
    Emoji("clutch-bag", "clutch-bag", "1F45D", "Bag"),
    Emoji("shopping-bags", "shopping-bags", "1F6CD", "Bag"),
    Emoji("backpack", "backpack", "1F392", "Bag"),
    Emoji("briefcase", "briefcase", "1F4BC", "Bag"),
    Emoji("luggage", "luggage", "1F9F3", "Bag"),
    Emoji("reusable-bag", None, "E2D2", "Bag"),  # an OpenMoji extra (a tote); Fluent has none
    Emoji("running-shoe", "running-shoe", "1F45F", "Sneaker"),
    Emoji("mans-shoe", "mans-shoe", "1F45E", LOW_SHOE),
    Emoji("flat-shoe", "flat-shoe", "1F97F", LOW_SHOE),
    Emoji("high-heeled-shoe", "high-heeled-shoe", "1F460", LOW_SHOE),
    Emoji("ballet-shoes", "ballet-shoes", "1FA70", LOW_SHOE),
    Emoji("womans-sandal", "womans-sandal", "1F461", "Sandal"),
    Emoji("thong-sandal", "thong-sandal", "1FA74", "Sandal"),
    Emoji("hiking-boot", "hiking-boot", "1F97E", "Ankle boot"),
    Emoji("womans-boot", "womans-boot", "1F462", "Ankle boot"),
)


def fetch(package: str, into: Path) -> Path:
    """`npm pack` one package (npm checks its integrity) and unpack it; the package folder."""
    out = subprocess.run(
        ["npm", "pack", package, "--json", "--pack-destination", str(into)],
        capture_output=True,
        text=True,
        check=True,
        cwd=into,
    )
    tarball = into / json.loads(out.stdout)[0]["filename"]
    folder = into / package.split("@")[0]
    with tarfile.open(tarball) as tar:
        tar.extractall(folder, filter="data")
    return folder / "package"


def render(svg: Path) -> bytes:
    """An SVG → PNG bytes, SIDE×SIDE, transparent where the SVG draws nothing."""
    import resvg_py  # not a project dependency: only this script needs it

    png: bytes = resvg_py.svg_to_bytes(svg_path=str(svg), width=SIDE, height=SIDE)
    return png


@dataclass(frozen=True)
class Drawing:
    """One file of the set: an emoji in one vendor's style."""

    emoji: Emoji
    vendor: str  # fluent | openmoji
    style: str
    svg: Path

    @property
    def file(self) -> str:
        return f"{self.vendor}-{self.style}-{self.emoji.name}.png"

    @property
    def accepted(self) -> str:
        return (self.vendor == "openmoji" and self.emoji.openmoji_accepted) or self.emoji.accepted


def drawings(fluent: Path, openmoji: Path) -> list[Drawing]:
    """Every emoji in every style of each set that has it."""
    out = []
    for emoji in EMOJI:
        if emoji.fluent:
            out += [Drawing(emoji, "fluent", s, fluent / d / f"{emoji.fluent}.svg") for s, d in FLUENT_STYLES.items()]
        om = f"{emoji.openmoji}.svg"
        out += [Drawing(emoji, "openmoji", s, openmoji / d / om) for s, d in OPENMOJI_STYLES.items()]
    return out


def openmoji_authors(openmoji: Path) -> dict[str, str]:
    """OpenMoji code → its designer (the attribution CC BY-SA asks for)."""
    data = json.loads((openmoji / "data" / "openmoji.json").read_text())
    return {entry["hexcode"]: entry["openmoji_author"] for entry in data}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the PNGs and labels.csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fluent, openmoji = fetch(FLUENT_PACKAGE, Path(tmp)), fetch(OPENMOJI_PACKAGE, Path(tmp))
        authors = openmoji_authors(openmoji)
        rows = drawings(fluent, openmoji)
        for row in rows:
            (args.out / row.file).write_bytes(render(row.svg))
    with open(args.out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "accepted", "source", "style", "emoji", "author"])
        for row in rows:
            author = "Microsoft" if row.vendor == "fluent" else authors[row.emoji.openmoji]
            writer.writerow([row.file, row.accepted, row.vendor, row.style, row.emoji.name, author])
    print(f"{len(rows)} drawings written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
