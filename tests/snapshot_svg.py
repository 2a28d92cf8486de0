"""The TUI snapshots compared as what they show, not how the SVG happens to be cut into elements.

Rich's `export_svg` writes one `<rect>` per background segment and one `<text>` per style run. The same
screen can come out cut differently: a blank cell carries a foreground colour it never draws, so a row of
the dimmed plots behind the help screen was one run in one process and five in another (same picture, other
file; a fresh-clone CI run failed on it). `canonical` rewrites an SVG into one form per picture: style
classes inlined, blank runs dropped and the blanks at the ends of a run trimmed (a blank draws nothing:
its background is a rect), and touching rects of one colour merged. The stored snapshots are in this form
(`pytest tests/test_tui_snapshots.py --snapshot-update` writes it) and stay viewable SVG files."""

from __future__ import annotations

import re

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


def _num(value: float) -> str:
    return f"{round(value, 1):g}"


def canonical(svg: str) -> str:
    """`svg` (an export_svg screenshot, its unique id already stripped) in its one form per picture."""
    styles = {name: body.strip() for name, body in _STYLE.findall(svg)}
    svg = _STYLE.sub("", svg)

    pieces: list[list[str | float]] = []  # [style, x, y, width, clip, content] of each inked run, in order
    for m in _TEXT.finditer(svg):
        name, x, y, length, clip, content = m.groups()
        body = content
        while body.startswith(BLANK):
            body = body[len(BLANK) :]
        lead = (len(content) - len(body)) // len(BLANK)
        core = body
        while core.endswith(BLANK):
            core = core[: -len(BLANK)]
        trail = (len(body) - len(core)) // len(BLANK)
        if not core:
            continue
        left, width = float(x) + lead * CELL, float(length) - (lead + trail) * CELL
        last = pieces[-1] if pieces else None
        style = styles.get(name, "")
        if last and last[0] == style and last[2] == y and last[4] == clip:  # only blanks between: one run
            gap = round((left - float(last[1]) - float(last[3])) / CELL)
            last[3], last[5] = left + width - float(last[1]), f"{last[5]}{BLANK * gap}{core}"
        else:
            pieces.append([style, left, y, width, clip, core])
    texts = list(_TEXT.finditer(svg))
    if texts:
        runs = "".join(
            f'<text style="{st}" x="{_num(float(x))}" y="{y}" textLength="{_num(float(w))}" clip-path="{c}">{t}</text>'
            for st, x, y, w, c, t in pieces
        )
        start, end = texts[0].start(), texts[-1].end()
        svg = svg[:start] + runs + _TEXT.sub("", svg[start:end]) + svg[end:]
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
    start, end = rects[0].start(), rects[-1].end()
    return svg[:start] + out + _RECT.sub("", svg[start:end]) + svg[end:]
