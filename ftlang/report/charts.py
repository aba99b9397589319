"""Line charts for the report, computed here and drawn by the HTML template as inline SVG.

`charts(history)` gives the loss chart (train and validation loss on one y scale, against the
step) and, beneath it on the same x axis, the learning-rate schedule. Each chart carries its plot
box, axis ticks at round values with labels, and one polyline per series (plus dots where a series
has few points, so a single evaluation is still visible). Torch-free, plain data.
"""

from __future__ import annotations

import math
from typing import Any

WIDTH = 720
MARGIN = {"left": 64, "right": 16, "top": 24, "bottom": 40}
SERIES = {  # history key → (legend, colour, dash)
    "loss": ("train loss", "#1f77b4", ""),
    "val_loss": ("validation loss", "#d62728", "6,3"),
    "lr": ("learning rate", "#2ca02c", ""),
}


def nice_ticks(lo: float, hi: float, count: int = 5, enclose: bool = False) -> list[float]:
    """About `count` round tick values (1, 2 or 5 × 10^k apart) within [lo, hi], or from the last
    round value at or below lo to the first at or above hi (`enclose`: the axis then spans them)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step if enclose else hi
    ticks, i = [], 0
    while first + i * step <= last + step * 1e-9:
        t = round(first + i * step, 12)
        if enclose or t >= lo - step * 1e-9:
            ticks.append(t)
        i += 1
    return ticks


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def _points(history: list[dict], key: str) -> list[tuple[float, float]]:
    return [(float(r["step"]), float(r[key])) for r in history
            if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
            and math.isfinite(r[key]) and isinstance(r.get("step"), (int, float))]


def chart(series: dict[str, list[tuple[float, float]]], x_range: tuple[float, float], height: int,
          y_title: str, y_from_zero: bool = False, x_title: str = "step") -> dict[str, Any] | None:
    """One chart: every series on the same axes (shared y scale)."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return None
    x0, x1 = x_range
    y0 = 0.0 if y_from_zero else min(p[1] for p in pts)
    y1 = max(p[1] for p in pts)
    yt = nice_ticks(y0, y1, enclose=True)
    y0, y1 = min([y0, *yt]), max([y1, *yt])
    xt = nice_ticks(x0, x1, 8)
    left, top = MARGIN["left"], MARGIN["top"]
    w, h = WIDTH - left - MARGIN["right"], height - top - MARGIN["bottom"]

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * w

    def py(y: float) -> float:
        return top + h - (y - y0) / ((y1 - y0) or 1.0) * h

    drawn = []
    for key, s in series.items():
        if not s:
            continue
        legend, colour, dash = SERIES.get(key, (key, "#9467bd", ""))  # a sweep's metric: report/sweep.py
        coords = [(round(px(x), 1), round(py(y), 1)) for x, y in s]
        drawn.append({"key": key, "legend": legend, "colour": colour, "dash": dash,
                      "points": " ".join(f"{x},{y}" for x, y in coords),
                      "dots": coords if len(coords) <= 30 else []})
    return {
        "width": WIDTH, "height": height, "left": left, "top": top, "right": left + w, "bottom": top + h,
        "x_ticks": [(round(px(t), 1), _label(t)) for t in xt if x0 <= t <= x1],
        "y_ticks": [(round(py(t), 1), _label(t)) for t in yt],
        "series": drawn, "y_title": y_title, "x_title": x_title,
        "x_min": x0, "x_max": x1, "y_min": min(p[1] for p in pts), "y_max": max(p[1] for p in pts),
    }


def charts(history: list[dict]) -> dict[str, Any] | None:
    """{"loss": chart, "lr": chart or None, "points": {key: count}}, or None when nothing was logged."""
    found = {k: _points(history, k) for k in SERIES}
    loss_pts = found["loss"] + found["val_loss"]
    if not loss_pts:
        return None
    xs = [p[0] for p in loss_pts + found["lr"]]
    x_range = (min(xs), max(xs))
    if x_range[0] == x_range[1]:
        x_range = (x_range[0] - 1, x_range[1] + 1)
    return {
        "loss": chart({"loss": found["loss"], "val_loss": found["val_loss"]}, x_range, 300, "loss"),
        "lr": chart({"lr": found["lr"]}, x_range, 150, "learning rate", y_from_zero=True),
        "points": {k: len(v) for k, v in found.items()},
    }
