"""Find, verify and load Fashion-MNIST as numpy uint8 arrays with a fixed train/val/test split.

numpy only: the inference paths and the figures use this module without importing torch.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, ref
from .extras import INSTALL_TRAIN
from .registry import PERMUTE_SEED

CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: SHA-256 of the decompressed IDX files (shared/DESIGN.md): content, not container, is verified.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

#: Fashion-MNIST's shape of each file: the largest accepted (other IDX datasets of the same image size may hold
#: fewer items, with FMNIST_VERIFY=0). A header declaring more is refused before the body is read.
SHAPES: dict[str, tuple[int, ...]] = {
    "train-images-idx3-ubyte": (60_000, 28, 28),
    "train-labels-idx1-ubyte": (60_000,),
    "t10k-images-idx3-ubyte": (10_000, 28, 28),
    "t10k-labels-idx1-ubyte": (10_000,),
}

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLIT_SEED = 20240917  # fixed forever: the validation split never moves with the training seed
VAL_FRACTION = 6  # 1 in 6 of each class: 10,000 validation images, 1,000 of each class
#: fixed forever, like the split seed: the per-class order the nested training subsets of `--train-size` take
#: their images from (the pixel permutation's seed, PERMUTE_SEED, lives in the numpy-free registry)
NESTED_SEED = 20250114
#: with a run's seed, which training labels `--label-noise` replaces (each seed its own draw)
NOISE_SEED = 20250115
PIXELS = 28 * 28

HOW_TO_GET = (
    "Fashion-MNIST not found. Get it one of these ways: "
    "(1) as root: apt-get install -y dataset-fashion-mnist (installs to /usr/share/datasets/fashion-mnist); "
    f"(2) put the four IDX files (.gz or raw) in a folder and give it as {ref('data_dir')} or set FMNIST_DATA=DIR; "
    "(3) online: run `fmnist data --download` to fetch them into ~/.cache/fmnist."
)


def cache_dir() -> Path:
    """The user cache folder (search step 4; the download target of step 5)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fmnist"


@dataclass(frozen=True)
class DataSource:
    """Where the dataset was found and how (`via` names the search step)."""

    folder: Path
    via: str
    files: dict[str, Path] = field(default_factory=dict)


def _locate_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Each IDX name → an existing raw or .gz file in `folder`; and the names of the files not there."""
    found: dict[str, Path] = {}
    for name in SHA256:
        for candidate in (
            folder / name,
            folder / f"{name}.gz",
            folder / "FashionMNIST" / "raw" / name,
            folder / "FashionMNIST" / "raw" / f"{name}.gz",
        ):
            if candidate.is_file():
                found[name] = candidate
                break
    return found, [name for name in SHA256 if name not in found]


def find_dataset(data_dir: Path | None = None, download: bool = False) -> DataSource:
    """Search in the documented order; an explicit data folder or $FMNIST_DATA is used strictly."""
    explicit = [(Path(data_dir), ref("data_dir"))] if data_dir else []
    if not explicit and os.environ.get("FMNIST_DATA"):
        explicit = [(Path(os.environ["FMNIST_DATA"]), "$FMNIST_DATA")]
    if explicit:
        folder, via = explicit[0]
        files, missing = _locate_files(folder)
        if missing:
            raise DataError(f"{via} {folder}: {', '.join(missing)} (raw or .gz) not found there. " + HOW_TO_GET)
        return DataSource(folder, via, files)
    for folder, via in ((SYSTEM_DIR, "Debian package dataset-fashion-mnist"), (cache_dir(), "user cache")):
        files, missing = _locate_files(folder)
        if not missing:
            return DataSource(folder, via, files)
    if download:
        return _download_into_cache()
    raise DataError(HOW_TO_GET)


def _download_into_cache() -> DataSource:
    """Search step 5: torchvision's downloader (needs internet)."""
    try:
        from torchvision.datasets import FashionMNIST
    except ImportError as exc:  # the base install has no torchvision
        raise DataError(f"download needs torchvision, in the [train] extra: {INSTALL_TRAIN}. " + HOW_TO_GET) from exc
    target = cache_dir()
    try:
        FashionMNIST(str(target), train=True, download=True)
        FashionMNIST(str(target), train=False, download=True)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        raise DataError(f"download failed ({type(exc).__name__}: {exc}). " + HOW_TO_GET) from exc
    files, missing = _locate_files(target)
    if missing:
        raise DataError("download finished but the files are not in the cache. " + HOW_TO_GET)
    return DataSource(target, "downloaded by torchvision", files)


def read_bytes(path: Path, largest: tuple[int, ...] | None = None) -> bytes:
    """The decompressed bytes of a raw or gzip IDX file, read no further than its header declares.

    The header is checked first (against `largest`, the biggest shape accepted, when given), then at
    most the declared body plus one byte is read: a gzip that inflates to gigabytes or a huge sparse
    file is refused after reading a few bytes, never loaded. A damaged file is a DataError naming it."""
    try:
        with open(path, "rb") as raw:
            packed = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if packed else open(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08:
                return head + fh.read(16)  # parse_idx names what is wrong with it
            dims = fh.read(4 * head[3])
            shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(len(dims) // 4))
            _check_shape(path, shape, largest)
            size = int(np.prod(shape)) if shape else 0
            return head + dims + fh.read(size + 1)  # one byte more shows a padded file to parse_idx
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); the file is damaged, reinstall or re-download it") from exc


def _check_shape(path: Path, shape: tuple[int, ...], largest: tuple[int, ...] | None) -> None:
    """Refuse a header whose shape is not Fashion-MNIST's (fewer items allowed) before its body is read."""
    if largest is None:
        return
    if len(shape) != len(largest) or shape[1:] != largest[1:] or not 0 < shape[0] <= largest[0]:
        raise DataError(
            f"{path}: its header declares shape {list(shape)}, not Fashion-MNIST's {list(largest)} "
            f"(at most {largest[0]:,} items); the file is damaged or another dataset, replace it"
        )


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes (unsigned-byte data only, as Fashion-MNIST uses) into an array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{source}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{source}: IDX type 0x{data[2]:02x} is not unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DataError(
            f"{source}: truncated or padded: {len(data) - header} data bytes, shape {shape} "
            f"needs {expected}; reinstall or re-download the file"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


@dataclass(frozen=True)
class Dataset:
    """The whole dataset in memory: uint8 images [N,28,28], int64 labels [N], fixed split."""

    source: DataSource
    sha256: dict[str, str]
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of 'train', 'val' or 'test'."""
        return getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/val indices (1 in 6 of each class to val), from the fixed split seed."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for cls in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == cls)
        val_parts.append(rng.choice(members, size=len(members) // VAL_FRACTION, replace=False))
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(labels)), val)
    # a fixed shuffle of the train indices, so `--subset N` takes a class-mixed prefix
    return rng.permutation(train), val


def pixel_permutation(seed: int = PERMUTE_SEED) -> np.ndarray:
    """The fixed permutation of the 784 pixel positions (`--permute`): int64 [784], pixel i of a permuted image
    (row-major) is pixel perm[i] of the natural one."""
    return np.random.default_rng(seed).permutation(PIXELS).astype(np.int64)


def permute_pixels(images: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Images [..., 28, 28] with their pixels moved by `perm` (the same permutation for every image)."""
    flat = images.reshape(*images.shape[:-2], PIXELS)
    return flat[..., perm].reshape(images.shape)


def nested_order(labels: np.ndarray, seed: int = NESTED_SEED) -> np.ndarray:
    """Indices of the training split in a fixed order whose every prefix is stratified and nested (`--train-size`):
    each class's images in a fixed random order, interleaved rank by rank (the first image of every class,
    then the second, ...), so the first N hold N/10 of each class (±1) and hold the first M for every M < N."""
    rng = np.random.default_rng(seed)
    ranks = np.empty(len(labels), dtype=np.int64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        ranks[members] = rng.permutation(len(members))
    return np.lexsort((labels, ranks))  # by rank, then by class


def noisy_labels(labels: np.ndarray, percent: int, seed: int) -> np.ndarray:
    """A copy of `labels` with exactly round(percent × N / 100) of them replaced by another class, drawn uniformly
    from the other nine (`--label-noise`, Zhang et al. 2017): which images and which wrong classes are fixed by
    the run's seed, so the same seed corrupts the same labels and another seed others."""
    rng = np.random.default_rng((NOISE_SEED, seed))
    out: np.ndarray = labels.copy()
    wrong = rng.choice(len(labels), size=round(percent * len(labels) / 100), replace=False)
    out[wrong] = (labels[wrong] + rng.integers(1, 10, size=len(wrong))) % 10
    return out


def verification_enabled() -> bool:
    """False when $FMNIST_VERIFY=0: for synthetic or other IDX datasets (the tests use it)."""
    return os.environ.get("FMNIST_VERIFY", "1") != "0"


def load_dataset(data_dir: Path | None = None, verify: bool | None = None, download: bool = False) -> Dataset:
    """Find, verify (SHA-256 of decompressed content) and load the dataset with its fixed split."""
    verify = verification_enabled() if verify is None else verify
    source = find_dataset(data_dir, download=download)
    arrays: dict[str, np.ndarray] = {}
    hashes: dict[str, str] = {}
    for name, path in source.files.items():
        data = read_bytes(path, SHAPES[name])
        digest = hashlib.sha256(data).hexdigest()
        if verify and digest != SHA256[name]:
            raise DataError(
                f"{path}: SHA-256 {digest[:12]}… does not match Fashion-MNIST's {name} "
                f"({SHA256[name][:12]}…); the file is damaged or not Fashion-MNIST, replace it"
            )
        hashes[name] = digest
        arrays[name] = parse_idx(data, str(path))
    images, labels = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"].astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{source.folder}: {len(images)} training images but {len(labels)} labels")
    train_idx, val_idx = split_indices(labels)
    return Dataset(
        source=source,
        sha256=hashes,
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        val_images=images[val_idx],
        val_labels=labels[val_idx],
        test_images=arrays["t10k-images-idx3-ubyte"].copy(),
        test_labels=arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
    )


def dataset_fingerprint(hashes: dict[str, str]) -> str:
    """One SHA-256 over the four file hashes, to stamp runs and exported models."""
    joined = "".join(f"{name}:{hashes[name]}\n" for name in sorted(hashes))
    return hashlib.sha256(joined.encode()).hexdigest()


def class_counts(labels: np.ndarray) -> list[int]:
    """Number of images per class, in class order."""
    return [int(c) for c in np.bincount(labels, minlength=len(CLASSES))]
