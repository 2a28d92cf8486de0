"""Dataset search order, IDX parsing, verification and the fixed split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmnist_tui.core import data
from fmnist_tui.core.errors import DataError
from tests.conftest import make_tiny_dataset, write_idx


def test_parse_idx_roundtrip_raw_and_gz(tmp_path: Path) -> None:
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "a", arr, gz=False)
    write_idx(tmp_path / "b", arr, gz=True)
    for path in (tmp_path / "a", tmp_path / "b.gz"):
        np.testing.assert_array_equal(data.parse_idx(data.read_bytes(path)), arr)


def test_parse_idx_rejects_truncated_and_bad_magic() -> None:
    good = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(10)
    assert data.parse_idx(good).shape == (10,)
    with pytest.raises(DataError, match="truncated"):
        data.parse_idx(good[:-3], "x-labels")
    with pytest.raises(DataError, match="magic"):
        data.parse_idx(b"\x1f\x8bxxxxxxx", "x")


def test_explicit_dir_is_strict_and_lists_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    with pytest.raises(DataError) as err:
        data.find_dataset(tmp_path)
    msg = str(err.value)
    assert f"data_dir {tmp_path}" in msg and "apt-get install -y dataset-fashion-mnist" in msg and "FMNIST_DATA" in msg


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system, cache_home, env_dir, cli_dir = (make_tiny_dataset(tmp_path / n) for n in ("sys", "cachehome", "env", "cli"))
    (cache_home / "fmnist").mkdir()
    for f in list(cache_home.glob("*.gz")):
        f.rename(cache_home / "fmnist" / f.name)
    monkeypatch.setattr(data, "SYSTEM_DIR", system)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("FMNIST_DATA", str(env_dir))
    assert data.find_dataset(cli_dir).folder == cli_dir
    assert data.find_dataset().folder == env_dir
    monkeypatch.delenv("FMNIST_DATA")
    assert data.find_dataset().via.startswith("Debian")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "nothing")
    assert data.find_dataset().folder == cache_home / "fmnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="not found"):
        data.find_dataset()


def test_hash_mismatch_names_the_file(tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: SHA-256"):
        data.load_dataset(tiny_data, verify=True)
    ds = data.load_dataset(tiny_data, verify=False)
    assert ds.train_images.dtype == np.uint8 and ds.train_images.shape[1:] == (28, 28)


def test_truncated_gzip_names_the_file(tiny_data: Path) -> None:
    path = tiny_data / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        data.load_dataset(tiny_data, verify=False)


def test_split_is_fixed_stratified_and_disjoint(tiny_data: Path) -> None:
    a, b = data.load_dataset(tiny_data), data.load_dataset(tiny_data)
    np.testing.assert_array_equal(a.val_images, b.val_images)
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    assert data.class_counts(a.val_labels) == [5] * 10  # 1 in 6 of 30 per class
    assert data.class_counts(a.train_labels) == [25] * 10
    train_idx, val_idx = data.split_indices(np.repeat(np.arange(10), 60))
    assert not set(train_idx) & set(val_idx) and len(train_idx) + len(val_idx) == 600


def test_fingerprint_depends_on_every_hash() -> None:
    base = dict(data.SHA256)
    changed = {**base, "t10k-labels-idx1-ubyte": "0" * 64}
    assert data.dataset_fingerprint(base) != data.dataset_fingerprint(changed)


def test_a_missing_file_is_named(tiny_data: Path) -> None:
    (tiny_data / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte \(raw or \.gz\) not found"):
        data.load_dataset(tiny_data)


def test_a_gzip_bomb_is_refused_without_inflating_it(tiny_data: Path) -> None:
    """A valid header and body followed by 512 MB of zeros (0.5 MB compressed): refused as padded, and
    reading it never holds more than the declared size in memory."""
    import tracemalloc
    import zlib

    labels = np.repeat(np.arange(10, dtype=np.uint8), 10)
    head = b"\0\0\x08\x01" + len(labels).to_bytes(4, "big")
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    bomb = packer.compress(head + labels.tobytes())
    zeros = bytes(1 << 20)
    bomb += b"".join(packer.compress(zeros) for _ in range(512)) + packer.flush()
    (tiny_data / "t10k-labels-idx1-ubyte.gz").write_bytes(bomb)
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: truncated or padded"):
            data.load_dataset(tiny_data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB while refusing a bomb"


def test_a_header_declaring_too_much_is_refused_before_reading(tiny_data: Path) -> None:
    """A 10 GB sparse IDX file whose header declares a billion images: refused from its 16-byte header."""
    path = tiny_data / "train-images-idx3-ubyte"
    (tiny_data / "train-images-idx3-ubyte.gz").unlink()
    with open(path, "wb") as fh:
        fh.write(b"\0\0\x08\x03" + (10**9).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        fh.truncate(10 * 2**30)
    with pytest.raises(DataError, match=r"declares shape \[1000000000, 28, 28\], not Fashion-MNIST's"):
        data.load_dataset(tiny_data)
    path.write_bytes(b"\0\0\x08\x03" + (60).to_bytes(4, "big") + (32).to_bytes(4, "big") * 2)
    with pytest.raises(DataError, match=r"declares shape \[60, 32, 32\]"):
        data.load_dataset(tiny_data)
