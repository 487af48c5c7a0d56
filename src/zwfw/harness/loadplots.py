"""Plots of the load suite's figures for `report.html` and `zwfw capacity`: inline SVG, drawn
from the figures in report.json (so the sealed figures and the pictures cannot disagree),
no script and no external asset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30
PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e")


def _nice(value: float) -> float:
    """A round upper bound for an axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value)))
    for step in (0.1, 0.2, 0.25, 0.5, 1.0):
        if value <= magnitude * step:
            return magnitude * step
    return float(magnitude)


def line_chart(
    title: str,
    x: Sequence[float],
    lines: Mapping[str, Sequence[float | None]],
    *,
    unit: str,
    x_label: str = "seconds from the start",
    marks: Mapping[str, float] | None = None,
    shade: tuple[float, float] | None = None,
    shade_label: str = "steady window",
) -> Markup:
    """Lines over x (gaps where a value is None), horizontal `marks` (e.g. a threshold), an
    optional shaded x range (the steady window)."""
    values = [v for series in lines.values() for v in series if v is not None]
    highest = max([*values, 0.0])
    # A target far above every value would flatten the lines: it is named, not drawn.
    marks = marks or {}
    above = {k: v for k, v in marks.items() if highest and v > 2.5 * highest}
    marks = {k: v for k, v in marks.items() if k not in above}
    if above:
        title += (
            " (" + ", ".join(f"{k} {v:g} {unit}, above the plot" for k, v in above.items()) + ")"
        )
    top = _nice(max([highest, *marks.values()]))
    x_max = max(x) if x else 1.0
    x_max = x_max or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(value: float) -> float:
        return LEFT + plot_w * value / x_max

    def py(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    parts = [
        f'<figure class="plot"><figcaption>{escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    if shade is not None:
        start, end = shade
        parts.append(
            f'<rect x="{px(start):.1f}" y="{TOP}" width="{max(0.0, px(end) - px(start)):.1f}" '
            f'height="{plot_h}" fill="#f6f8fa"><title>{escape(shade_label)}</title></rect>'
        )
    for fraction in (0, 0.25, 0.5, 0.75, 1.0):
        y = py(top * fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#eaeef2"/><text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{top * fraction:g}</text>"
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 4}">0</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 4}" text-anchor="end">{x_max:g}</text>'
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">'
        f"{escape(x_label)} · {escape(unit)}</text>"
    )
    for (name, level), colour in zip(marks.items(), ("#cf222e", "#9a6700"), strict=False):
        y = py(level)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="5 4"/><text x="{WIDTH - RIGHT - 2}" y="{y - 3:.1f}" '
            f'text-anchor="end" fill="{colour}">{escape(name)} {level:g}</text>'
        )
    legend_x = LEFT + 6
    for (name, series), colour in zip(lines.items(), PALETTE, strict=False):
        segments: list[list[str]] = [[]]
        for xv, yv in zip(x, series, strict=False):
            if yv is None:
                segments.append([])
                continue
            segments[-1].append(f"{px(xv):.1f},{py(yv):.1f}")
        for points in segments:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            elif points:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                    f'points="{" ".join(points)}"/>'
                )
        parts.append(
            f'<rect x="{legend_x}" y="{TOP + 2}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{legend_x + 13}" y="{TOP + 7}">{escape(name)}</text>'
        )
        legend_x += 13 + 7 * len(name) + 14
    parts.append("</svg></figure>")
    return Markup("".join(parts))


def load_plots(load: Mapping[str, Any]) -> dict[str, Markup]:
    """The four plots of one load run: latency percentiles, throughput, users, errors."""
    series = load["series"]
    x = [float(second) for second in series["second"]]
    ramp = float(load["workload"]["ramp_seconds"])
    window = (ramp, ramp + float(load["workload"]["duration_seconds"]))
    targets = load["targets"]
    return {
        "latency": line_chart(
            "Latency percentiles of the requests started each second (all steps)",
            x,
            {"p50": series["p50_ms"], "p95": series["p95_ms"], "p99": series["p99_ms"]},
            unit="ms",
            marks={
                "p95 target": targets["p95_seconds"] * 1000,
                "p99 target": targets["p99_seconds"] * 1000,
            },
            shade=window,
        ),
        "throughput": line_chart(
            "Throughput per second",
            x,
            {"requests/s": series["requests"], "journeys started/s": series["journeys_started"]},
            unit="per second",
            marks={"arrival rate": float(load["workload"]["arrivals_per_second"])},
            shade=window,
        ),
        "users": line_chart(
            "Journeys in flight (busy users, mean over each second)",
            x,
            {"in flight": series["in_flight"]},
            unit="journeys",
            shade=window,
        ),
        "errors": line_chart(
            "Failed requests per second",
            x,
            {"failed/s": series["failures"]},
            unit="requests",
            shade=window,
        ),
    }


def fault_plots(scenario: Mapping[str, Any]) -> dict[str, Markup]:
    """A fault scenario's timeline: success rate and p95 latency per second of the judged
    services, the fault window shaded (first fault caused to last recovery and settle)."""
    series = scenario["series"]
    x = [float(second) for second in series["second"]]
    window = scenario.get("window")
    shade = (float(window["start_seconds"]), float(window["end_seconds"])) if window else None
    label = "fault window"
    events = "; ".join(
        f"{event['at_seconds']:g} s {event['what']}" for event in scenario.get("events", [])
    )
    return {
        "success": line_chart(
            f"{scenario['title']}: requests succeeded per second ({events or 'no fault caused'})",
            x,
            {"success %": series["success_pct"]},
            unit="%",
            marks={"threshold": round(float(scenario["success_threshold"]) * 100, 2)},
            shade=shade,
            shade_label=label,
        ),
        "latency": line_chart(
            f"{scenario['title']}: p95 latency of the requests started each second",
            x,
            {"p95": series["p95_ms"]},
            unit="ms",
            shade=shade,
            shade_label=label,
        ),
    }


def capacity_plot(steps: Sequence[Mapping[str, Any]], journey: str) -> Markup:
    """Capacity mode: p95 and p99 of the journey's worst step against the offered rate."""
    x = [float(step["rate"]) for step in steps]
    return line_chart(
        f"Capacity of the {journey} journey: worst step latency by arrival rate",
        x,
        {
            "worst p95": [step.get("worst_p95_ms") for step in steps],
            "worst p99": [step.get("worst_p99_ms") for step in steps],
        },
        unit="ms",
        x_label="arrivals per second",
        marks={
            "p95 target": float(steps[0]["p95_target_ms"]) if steps else 0.0,
            "p99 target": float(steps[0]["p99_target_ms"]) if steps else 0.0,
        },
    )
