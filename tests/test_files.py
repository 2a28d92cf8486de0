"""Which files are images: the decoder, `predict`'s folder scan and the TUI's file tree read one suffix list."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from PIL import Image

from fmnist_tui.inference.files import expand_inputs
from fmnist_tui.inference.preprocess import ALLOWED_FORMATS, FORMAT_SUFFIXES, IMAGE_SUFFIXES, ImageError, preprocess
from fmnist_tui.tui.classify_screen import ImageTree
from tests.test_preprocess import deadline, garment


def test_the_suffix_list_is_the_allowed_formats_own() -> None:
    assert tuple(FORMAT_SUFFIXES) == ALLOWED_FORMATS
    assert {s for suffixes in FORMAT_SUFFIXES.values() for s in suffixes} == IMAGE_SUFFIXES
    registered = Image.registered_extensions()
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        for suffix in suffixes:
            assert suffix == suffix.lower() and registered.get(suffix) == fmt, (suffix, fmt)  # Pillow agrees


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """One file per accepted suffix, in its format (upper-case suffixes too), and files of refused kinds."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    picture = Image.fromarray(garment()).convert("RGB")
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        for suffix in suffixes:
            picture.save(folder / f"{fmt.lower()}{suffix}", fmt)
        picture.save(folder / f"{fmt.lower()}-upper{suffixes[0].upper()}", fmt)
    picture.save(folder / "gray.pgm", "PPM")  # the TUI used to offer these, which predict refuses
    picture.save(folder / "color.ppm", "PPM")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_tree_folder_scan_and_decoder_agree(mixed_folder: Path) -> None:
    files = sorted(mixed_folder.iterdir())
    tree = ImageTree.__new__(ImageTree)  # the filter alone: a tree made outside an app warns of its unawaited watcher
    in_tree = {p.name for p in tree.filter_paths(files)}
    in_scan = {Path(path).name for path, problem in expand_inputs([str(mixed_folder)]) if problem is None}
    decoded = set()
    for path in files:
        try:
            preprocess(path)
        except ImageError as exc:
            assert "not an image, or not one of the allowed formats" in str(exc), path
            continue
        decoded.add(path.name)
    expected = {p.name for p in files if p.suffix.lower() in IMAGE_SUFFIXES}
    assert len(expected) == len(IMAGE_SUFFIXES) + len(FORMAT_SUFFIXES)  # every suffix, and upper case
    assert in_tree == in_scan == decoded == expected


def test_an_empty_folder_names_the_suffixes(tmp_path: Path) -> None:
    (tmp_path / "photo.pgm").write_bytes(b"P5 1 1 255 \x00")
    assert list(expand_inputs([str(tmp_path)])) == [
        (str(tmp_path), f"folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ]


def test_a_folder_scan_names_what_it_cannot_read(tmp_path: Path) -> None:
    """A FIFO, a socket or a broken link named as an image is listed, and the reader says why it is refused
    (they used to be skipped without a word); nothing is opened for reading on the way."""
    Image.fromarray(garment()).save(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    os.mkfifo(tmp_path / "pipe.txt")  # not named as an image: not listed, as notes.txt would not be
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.webp"))
        with deadline(10):
            listed = [path for path, problem in expand_inputs([str(tmp_path)]) if problem is None]
            reasons = {}
            for path in listed:
                try:
                    preprocess(path)
                except ImageError as exc:
                    reasons[Path(path).name] = str(exc)
    assert [Path(p).name for p in listed] == ["gone.jpg", "good.png", "pipe.png", "sock.webp"]
    assert reasons == {
        "gone.jpg": "a symbolic link to a missing file",
        "pipe.png": "is a named pipe (FIFO), not a regular file; refused without reading it",
        "sock.webp": "is a socket, not a regular file; refused without reading it",
    }
