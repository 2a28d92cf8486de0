"""`printable`: control, line-breaking and reordering characters spelled out; other text untouched."""

from __future__ import annotations

import os

import pytest

from fmnist_tui.core.text import counted, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("bad\nother.png: fine", "bad\\nother.png: fine"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("e\x1b[31mred\x1b[0m.png", "e\\x1b[31mred\\x1b[0m.png"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1\x9b2J\x85.png", "c1\\x9b2J\\x85.png"),  # C1: CSI and NEL
        ("line\u2028para\u2029.png", "line\\u2028para\\u2029.png"),
        ("gnp.\u202eexe", "gnp.\\u202eexe"),  # right-to-left override
        (os.fsdecode(b"\xff\xfe.png"), "\\xff\\xfe.png"),  # bytes that were not UTF-8
    ],
)
def test_unprintable_characters_are_spelled_out(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert "\n" not in printable(raw) and "\x1b" not in printable(raw)


@pytest.mark.parametrize("text", ["photos/shoe 1.png", "Ünïcödé/été.jpg", "T-shirt/top", "a\\nb [1].png", "😀.png"])
def test_ordinary_text_is_untouched(text: str) -> None:
    assert printable(text) == text


@pytest.mark.parametrize(("n", "shown"), [(0, "0 epochs"), (1, "1 epoch"), (2, "2 epochs"), (15, "15 epochs")])
def test_counted_says_one_epoch_and_many_epochs(n: int, shown: str) -> None:
    assert counted(n, "epoch") == shown
