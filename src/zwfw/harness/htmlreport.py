"""`report.html`: one self-contained page a reviewer reads offline.

Verdict first, then failures with their reasons and evidence links, waivers, then every
requirement. No scripts and no external assets (a Content-Security-Policy forbids loading any);
every value is HTML-escaped; the time plots are inline SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from zwfw.harness.loadplots import fault_plots, load_plots
from zwfw.harness.results import STATUSES, write_text

_COLOURS = {
    "pass": "#1a7f37",
    "fail": "#cf222e",
    "inconclusive": "#bc4c00",
    "not-tested": "#9a6700",
    "waived": "#8250df",
}
_VERDICT = {
    "certified": ("CERTIFIED", "Every MUST requirement passed or is validly waived."),
    "not-certified": ("NOT CERTIFIED", "MUST requirements not passed: {blocking}."),
    "partial-pass": (
        "PASSED (partial run)",
        "Every MUST requirement in scope passed or is validly waived; a partial run is not a "
        "certification.",
    ),
    "partial-fail": (
        "FAILED (partial run)",
        "MUST requirements in scope not passed: {blocking}. A partial run is not a certification.",
    ),
}


def _environment() -> jinja2.Environment:
    template = resources.files("zwfw.harness").joinpath("templates/report.html.j2")
    return jinja2.Environment(
        loader=jinja2.DictLoader({"report.html": template.read_text(encoding="utf-8")}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def time_chart(requirements: Sequence[Mapping[str, Any]]) -> Markup:
    """Horizontal bars: time spent on each in-scope requirement's tests, coloured by status."""
    rows = [r for r in requirements if r["in_scope"] and r["tests"]]
    if not rows:
        return Markup('<p class="muted">No test ran.</p>')
    longest = max(float(r["duration"]) for r in rows) or 1.0
    label_w, bar_w, row_h = 130, 520, 16
    height = row_h * len(rows) + 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" '
        f'height="{height}" role="img" aria-label="time per requirement">'
    ]
    for index, r in enumerate(rows):
        y = index * row_h
        width = max(1.0, bar_w * float(r["duration"]) / longest)
        colour = _COLOURS[r["status"]]
        parts.append(
            f'<text x="0" y="{y + 12}">{escape(r["id"])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 5}" '
            f'fill="{colour}"><title>{escape(r["id"])}: {float(r["duration"]):.3f} s '
            f"({escape(r['status'])})</title></rect>"
            f'<text x="{label_w + width + 4:.1f}" y="{y + 12}">{float(r["duration"]):.2f} s</text>'
        )
    parts.append(f'<text x="{label_w}" y="{height - 4}">0 s … {longest:.2f} s</text></svg>')
    return Markup("".join(parts))


def sparkline(latencies_ms: Sequence[float], scale_ms: float) -> Markup:
    """One bar per HTTP exchange (its latency), on the run's common scale."""
    if not latencies_ms:
        return Markup("")
    bar, gap, height = 4, 1, 24
    shown = list(latencies_ms)[:60]
    width = len(shown) * (bar + gap)
    bars = []
    for index, value in enumerate(shown):
        h = max(1.0, height * value / (scale_ms or 1.0))
        bars.append(
            f'<rect x="{index * (bar + gap)}" y="{height - h:.1f}" width="{bar}" '
            f'height="{h:.1f}" fill="#0969da"><title>{value:.1f} ms</title></rect>'
        )
    label = f"max {max(latencies_ms):.0f} ms"
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 70}" height="{height}" '
        f'role="img" aria-label="HTTP latencies">{"".join(bars)}'
        f'<text x="{width + 4}" y="{height - 8}">{label}</text></svg>'
    )


def _clauses(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The clause view, when the report judged any requirement the view names."""
    from zwfw.harness.clauses import clause_rows, load_clauses
    from zwfw.harness.errors import CatalogError
    from zwfw.harness.requirements import load_catalog

    try:
        clauses = load_clauses(load_catalog())
    except CatalogError:
        return []
    from zwfw.harness.pytest_plugin import OPT_IN_SUITES

    # Shown when the run reviewed security: the security suite's requirements are in scope.
    reviewed = any(
        r["in_scope"] and r["id"].startswith(OPT_IN_SUITES["security"])
        for r in document["requirements"]
    )
    return clause_rows(clauses, document) if reviewed else []


def render_html(
    document: Mapping[str, Any], latencies: Mapping[str, Sequence[float]] | None = None
) -> str:
    """The page for a report document; `latencies` maps requirement ID to exchange times (ms)."""
    latencies = latencies or {}
    requirements = document["requirements"]
    label, text = _VERDICT[document["verdict"]]
    blocking = ", ".join(document["summary"]["blocking"]) or "none"
    scale = max((max(values) for values in latencies.values() if values), default=1.0)
    load = (document.get("measurements") or {}).get("load")
    faults = (document.get("measurements") or {}).get("faults") or {}
    return (
        _environment()
        .get_template("report.html")
        .render(
            report=document,
            statuses=STATUSES,
            verdict_label=label,
            verdict_text=text.format(blocking=blocking),
            failures=[r for r in requirements if r["status"] == "fail"],
            inconclusive=[r for r in requirements if r["status"] == "inconclusive"],
            load=load,
            load_plots=load_plots(load) if load else {},
            faults=faults,
            fault_plots={name: fault_plots(figures) for name, figures in faults.items()},
            waived=[r for r in requirements if r["status"] == "waived"],
            waiver_notes=[w for w in document["waivers"] if w["state"] != "applied"],
            chart=time_chart(requirements),
            clauses=_clauses(document),
            sparklines={
                r["id"]: sparkline(latencies.get(r["id"], []), scale) for r in requirements
            },
        )
    )


def write_html(
    document: Mapping[str, Any], path: Path, latencies: Mapping[str, Sequence[float]] | None = None
) -> None:
    write_text(path, render_html(document, latencies))
