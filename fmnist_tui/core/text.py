"""Text from outside (file names, model metadata, error reasons) made safe to print for a human reader.

A file may be named `bad\nother.png: fine` or carry an escape sequence that recolours, retitles or
clears the terminal. Every line fmnist prints for people goes through `printable`, which spells such
characters out as Python would (`\n`, `\x1b`, `\u2028`), so that one input stays on one line and
the terminal only ever receives text. Machine-readable output (JSON, CSV) is quoted by its own rules
and keeps names exact.
"""

from __future__ import annotations

import re

#: C0 controls, DEL and C1 controls; the Unicode line and paragraph separators (some terminals and
#: most editors break lines there); the bidirectional overrides and isolates, which reorder what
#: follows them on screen; lone surrogates, which stand for bytes of a name that were not UTF-8.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spell(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte of the name that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control, line-breaking or reordering character spelled out (`\\n`, `\\x1b`, `\\u2028`)."""
    return _UNPRINTABLE.sub(_spell, text)


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, in the plural unless n is 1: `counted(1, "epoch")` is "1 epoch", `counted(7, "epoch")`
    "7 epochs" (the nouns fmnist counts take an s)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
