"""The TUI snapshots compared as what they show, not how the SVG happens to be cut into elements.

Rich's `export_svg` writes one `<rect>` per background segment and one `<text>` per style run. The same
screen can come out cut differently: a blank cell carries a foreground colour it never draws, so a row of
the dimmed plots behind the help screen was one run in one process and five in another (same picture, other
file; a fresh-clone CI run failed on it). `canonical` rewrites an SVG into one form per picture: style
classes inlined, blank runs dropped and the blanks at the ends of a run trimmed (a blank draws nothing:
its background is a rect), and touching rects of one colour merged. The stored snapshots are in this form
(`pytest tests/test_tui_snapshots.py --snapshot-update` writes it) and stay viewable SVG files.

`CanonicalSVG` is the syrupy extension that stores them: one file per test, `__snapshots__/MODULE/TEST.svg`,
each screenshot put in this form before it is compared or written (conftest.py's `screen_snapshot` uses it)."""

from __future__ import annotations

import re
from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

#: rich's export_svg: 20 px font, a cell 0.61 of it wide
CELL = 12.2
BLANK = "&#160;"
_STYLE = re.compile(r"\.terminal-(r\d+) \{ ([^}]*)\}\s*")
_TEXT = re.compile(
    r'<text class="terminal-(r\d+)" x="([\d.]+)" y="([\d.]+)" textLength="([\d.]+)" clip-path="([^"]+)">(.*?)</text>'
)
_RECT = re.compile(
    r'<rect fill="([^"]+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" shape-rendering="crispEdges"/>'
)


_TRIM = re.compile(rf"((?:{BLANK})*)(.*?)((?:{BLANK})*)", re.S)
#: the unique id export_svg puts in every class and clip-path name (terminal-1234567-r5): it changes with the picture
_UNIQUE_ID = re.compile(r"\bterminal-\d+-([\w-]+)")


def _num(value: float) -> str:
    return f"{round(value, 1):g}"


def _splice(svg: str, found: list[re.Match[str]], pattern: re.Pattern[str], replacement: str) -> str:
    """`svg` with the elements `found` (one block, in order) replaced by `replacement` where the block starts."""
    start, end = found[0].start(), found[-1].end()
    return svg[:start] + replacement + pattern.sub("", svg[start:end]) + svg[end:]


def canonical(svg: str) -> str:
    """`svg` (an export_svg screenshot, its unique id already stripped) in its one form per picture."""
    styles = {name: body.strip() for name, body in _STYLE.findall(svg)}
    svg = _STYLE.sub("", svg)

    texts = list(_TEXT.finditer(svg))
    pieces: list[list[str | float]] = []  # [style, x, y, width, clip, content] of each inked run, in order
    for m in texts:
        name, x, y, length, clip, content = m.groups()
        lead, core_text, trail = _TRIM.fullmatch(content).groups()  # type: ignore[union-attr]  # always matches
        if not core_text:
            continue
        left = float(x) + len(lead) // len(BLANK) * CELL
        width = float(length) - (len(lead) + len(trail)) // len(BLANK) * CELL
        last = pieces[-1] if pieces else None
        style = styles.get(name, "")
        if last and last[0] == style and last[2] == y and last[4] == clip:  # only blanks between: one run
            gap = round((left - float(last[1]) - float(last[3])) / CELL)
            last[3], last[5] = left + width - float(last[1]), f"{last[5]}{BLANK * gap}{core_text}"
        else:
            pieces.append([style, left, y, width, clip, core_text])
    if texts:
        runs = "".join(
            f'<text style="{st}" x="{_num(float(x))}" y="{y}" textLength="{_num(float(w))}" clip-path="{c}">{t}</text>'
            for st, x, y, w, c, t in pieces
        )
        svg = _splice(svg, texts, _TEXT, runs)
    rects = list(_RECT.finditer(svg))
    if not rects:
        return svg
    merged: list[list[float | str]] = []
    for m in rects:
        fill, x, y, width, height = m[1], float(m[2]), m[3], float(m[4]), m[5]
        last = merged[-1] if merged else None
        if last and last[0] == fill and last[2] == y and abs(float(last[1]) + float(last[3]) - x) < 0.05:
            last[3] = float(last[3]) + width
        else:
            merged.append([fill, x, y, width, height])
    edges = 'shape-rendering="crispEdges"'
    out = "".join(
        f'<rect fill="{f}" x="{_num(float(x))}" y="{y}" width="{_num(float(w))}" height="{h}" {edges}/>'
        for f, x, y, w, h in merged
    )
    return _splice(svg, rects, _RECT, out)


def stored_form(svg: str) -> str:
    """`svg`, as export_svg wrote it, in the form a snapshot is stored and compared in: its unique id stripped,
    then canonical."""
    return canonical(_UNIQUE_ID.sub(r"terminal-\1", svg))


class CanonicalSVG(SingleFileSnapshotExtension):
    """A snapshot per file, `__snapshots__/MODULE/TEST.svg`, in its stored form (the files already are: they are
    read as they are)."""

    _file_extension = "svg"
    _write_mode = WriteMode.TEXT

    def serialize(self, data: Any, **kwargs: Any) -> str:
        return stored_form(str(data))
