"""The forest of the lab's claims without matplotlib: one row per difference a claim rests on (its estimate, its
95% interval, the margin band and the verdict), read from verdict records (`verdicts.decide`, results.json), and
the same rows as text for the terminal (`figures.forest` draws them as a PNG)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: the verdict words, each with a colour in the PNG and a style in the terminal, in the order of their prefix match
STYLES: tuple[tuple[str, str, str], ...] = (
    ("supported", "#2e7d32", "bold green"),
    ("contradicted", "#c62828", "bold red"),
    ("fragile", "#ef6c00", "bold magenta"),
    ("not tested", "#9e9e9e", "dim"),
    ("", "#8d6e00", "bold yellow"),  # not supported at this sample size
)


def colour(verdict: str) -> str:
    return next(c for word, c, _ in STYLES if verdict.startswith(word))


def style(verdict: str) -> str:
    return next(s for word, _, s in STYLES if verdict.startswith(word))


@dataclass(frozen=True)
class Row:
    """One difference of one claim, in points (NaN where it has no interval); `first` on a claim's first row."""

    claim: str
    study: str
    name: str
    estimate: float
    low: float
    high: float
    margin: float
    verdict: str
    p_adjusted: float | None
    first: bool


def rows(verdicts: Iterable[dict[str, Any]]) -> list[Row]:
    """The forest's rows, claim by claim in the order given (a claim not tested: one row without a difference)."""
    out: list[Row] = []
    for v in verdicts:
        margin = 100 * float(v.get("margin") or 0.0)
        diffs = v.get("differences") or [{}]
        for i, d in enumerate(diffs):
            out.append(
                Row(
                    str(v.get("claim", "")),
                    str(v.get("study", "")),
                    str(d.get("name", "")),
                    _points(d.get("estimate")),
                    _points(d.get("ci_low")),
                    _points(d.get("ci_high")),
                    margin,
                    str(v.get("verdict", "")),
                    v.get("p_adjusted"),
                    i == 0,
                )
            )
    return out


def _points(x: Any) -> float:
    return math.nan if x is None else 100 * float(x)


def _scale(drawn: list[Row], limit: float) -> float:
    """The half-width of the text scale: the widest interval or margin, at most `limit` points."""
    ends = [abs(x) for r in drawn for x in (r.low, r.high, r.estimate, r.margin) if not math.isnan(x)]
    return min(limit, max(ends, default=1.0)) or 1.0


def text(drawn: list[Row], width: int = 31, limit: float = 5.0) -> list[tuple[str, str]]:
    """The rows as (text, style) lines: a claim's verdict line, then one scale per difference from −L to +L points
    (L the widest interval, at most `limit`): `┊` the margin's edges with `·` between, `─` the 95% interval, `●`
    the estimate, `│` zero (`┼` inside the interval); `◀`/`▶` where an interval runs past the scale."""
    half = _scale(drawn, limit)
    legend = f"scale ±{half:.1f} points: ┊·┊ margin, ─ 95% interval, ● estimate, │ zero"
    lines: list[tuple[str, str]] = [(legend, "dim")]

    def col(x: float) -> int:
        return max(0, min(width - 1, round((x + half) / (2 * half) * (width - 1))))

    for r in drawn:
        if r.first:
            p = "" if r.p_adjusted is None else f" (adjusted p {_p(r.p_adjusted)})"
            lines.append((f"● {r.verdict}{p}: {r.claim}", style(r.verdict)))
        if math.isnan(r.estimate):
            continue
        cells = [" "] * width
        for i in range(col(-r.margin), col(r.margin) + 1):
            cells[i] = "·"
        inside = not math.isnan(r.low) and r.low <= 0.0 <= r.high
        if not math.isnan(r.low):
            for i in range(col(r.low), col(r.high) + 1):
                cells[i] = "─"
        cells[col(-r.margin)] = cells[col(r.margin)] = "┊"
        cells[col(0.0)] = "┼" if inside else "│"
        if not math.isnan(r.low):
            cells[0] = "◀" if r.low < -half else cells[0]
            cells[-1] = "▶" if r.high > half else cells[-1]
        cells[col(r.estimate)] = "●"
        ci = "" if math.isnan(r.low) else f" [{r.low:+.2f}, {r.high:+.2f}]"
        lines.append((f"  {''.join(cells)} {r.estimate:+.2f}{ci} {r.name}", ""))
    return lines


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def markdown(drawn: list[Row]) -> str:
    """The rows as a Markdown table (beside the figure in report.md and the docs)."""
    lines = [
        "| claim | difference | estimate | 95% CI | margin | verdict | adjusted p |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for r in drawn:
        est = "—" if math.isnan(r.estimate) else f"{r.estimate:+.2f}"
        ci = "—" if math.isnan(r.low) else f"[{r.low:+.2f}, {r.high:+.2f}]"
        p = ("—" if r.p_adjusted is None else _p(r.p_adjusted)) if r.first else ""
        claim = _cell(r.claim) if r.first else ""
        verdict = f"**{_cell(r.verdict)}**" if r.first else ""
        lines.append(f"| {claim} | {_cell(r.name) or '—'} | {est} | {ci} | ±{r.margin:.2f} | {verdict} | {p} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").replace("*", "\\*").replace("<", "&lt;").split())


def _symlog(x: float) -> float:
    """The axis' transform: linear within ±1 point, logarithmic beyond (as the PNG's symlog axis)."""
    return x if abs(x) <= 1 else math.copysign(1 + math.log10(abs(x)), x)


def svg(drawn: list[Row], title: str) -> str:
    """The forest as an SVG document, drawn without matplotlib (the docs generator's figure): the same rows, axis
    and colours as `figures.forest`."""
    from html import escape

    row_h, left, plot, right, top = 30, 420, 330, 360, 46
    ends = [abs(x) for r in drawn for x in (r.low, r.high, r.estimate, r.margin) if not math.isnan(x)]
    span = _symlog(max(ends, default=1.0) * 1.1)
    height = top + row_h * len(drawn) + 40

    def px(x: float) -> float:
        return left + (_symlog(x) + span) / (2 * span) * plot

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + plot + right}" height="{height}" '
        'font-family="sans-serif" font-size="10">',
        f'<text x="{left + plot / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    ticks = [t for t in (-100, -10, -1, 0, 1, 10, 100) if abs(_symlog(t)) <= span]
    bottom = top + row_h * len(drawn)
    for t in ticks:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{t:+d}</text>')
    out.append(
        f'<text x="{left + plot / 2}" y="{bottom + 30}" text-anchor="middle">difference a − b (points; log beyond '
        "±1); grey: the margin</text>"
    )
    for i, r in enumerate(drawn):
        y = top + row_h * i + row_h / 2
        c = colour(r.verdict)
        out.append(
            f'<rect x="{px(-r.margin):.1f}" y="{y - 9}" width="{px(r.margin) - px(-r.margin):.1f}" height="18" '
            'fill="#e0e0e0"/>'
        )
        if r.first:
            out.append(
                f'<text x="{left - 8}" y="{y - 3}" text-anchor="end" font-weight="bold">'
                f"{escape(_short(r.claim))}</text>"
            )
            p = "" if r.p_adjusted is None else f" (p_adj {_p(r.p_adjusted)})"
            out.append(f'<text x="{left + plot + 8}" y="{y + 4}" fill="{c}">{escape(r.verdict + p)}</text>')
        out.append(f'<text x="{left - 8}" y="{y + 10}" text-anchor="end" fill="#555">{escape(r.name)}</text>')
        if math.isnan(r.estimate):
            out.append(f'<text x="{px(0):.1f}" y="{y + 4}" text-anchor="middle" fill="{c}">not tested</text>')
            continue
        if not math.isnan(r.low):
            out.append(
                f'<line x1="{px(r.low):.1f}" y1="{y}" x2="{px(r.high):.1f}" y2="{y}" stroke="{c}" stroke-width="2"/>'
            )
        out.append(f'<circle cx="{px(r.estimate):.1f}" cy="{y}" r="4" fill="{c}"/>')
    out.append(f'<line x1="{px(0):.1f}" y1="{top - 6}" x2="{px(0):.1f}" y2="{bottom}" stroke="#555"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _short(text: str, width: int = 64) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
