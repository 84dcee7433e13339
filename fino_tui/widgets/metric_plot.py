"""`MetricPlot`: the one plotting widget of the dashboard. Curves in, a braille line plot out;
textual-plot draws underneath, so the library can be swapped here alone.

Each curve is cut to about two points per column (min/max per bucket, so spikes stay) before it
is drawn, and redraws are capped at a few per second however often data arrives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plot import HiResMode, PlotWidget

from fino.store.queries import downsample
from fino.store.text import printable
from fino_tui.curves import Curve
from fino_tui.widgets.ticks import TickLabels, nice_ticks, tick_labels

# Matplotlib's tab10 on light backgrounds; the same hues lightened on dark ones.
LIGHT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf")
DARK_PALETTE = ("#5fb0f0", "#ffa94d", "#69db7c", "#ff6b6b", "#c39bf0", "#d4a373", "#f783ac",
                "#ced4da", "#e2e86b", "#66d9e8")
NEUTRAL = "grey50"
MIN_REDRAW_S = 0.25  # at most four redraws a second
MARKERS_BELOW = 40  # points per curve under which each point is marked (evaluations)
ROWS_PER_TICK = 3  # y labels at least a blank row apart, whatever the rounding to rows
COLUMNS_PER_TICK = 10  # x labels: up to 8 characters and a gap
MARGIN_MAX = 12  # the y labels' margin at most


def color_of(curve: Curve, dark: bool = True) -> str:
    palette = DARK_PALETTE if dark else LIGHT_PALETTE
    return NEUTRAL if curve.color is None else palette[curve.color % len(palette)]


class _Canvas(PlotWidget, can_focus=False):
    """textual-plot's widget, without focus: its keys (r, arrows) belong to the screen."""


class MetricPlot(Vertical):
    """A titled plot of one metric key for several runs or seed groups."""

    DEFAULT_CSS = """
    MetricPlot { height: 1fr; min-height: 6; }
    MetricPlot > .legend { height: 1; padding: 0 1; }
    MetricPlot > _Canvas { height: 1fr; }
    MetricPlot > _Canvas > .plot--axis { color: $foreground 45%; }
    MetricPlot > _Canvas > .plot--tick { color: $foreground 75%; text-style: none; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.key = ""
        self.curves: list[Curve] = []
        self.note = ""
        self._drawn_at = 0.0
        self._pending = False

    def compose(self) -> ComposeResult:
        yield Static(classes="legend")
        yield _Canvas(allow_pan_and_zoom=False)

    def on_mount(self) -> None:
        canvas = self.query_one(_Canvas)
        canvas.margin_top, canvas.margin_bottom, canvas.margin_left = 0, 2, 8
        canvas.set_x_formatter(TickLabels())
        canvas.set_y_formatter(TickLabels())
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._schedule())

    def set_data(self, key: str, curves: Sequence[Curve], note: str = "") -> None:
        """Show these curves (the redraw may come a moment later: redraws are capped)."""
        self.key, self.curves, self.note = key, list(curves), note
        self._schedule()

    def on_resize(self) -> None:
        self._schedule()  # the number of points drawn follows the width

    def _schedule(self) -> None:
        if self._pending:
            return
        wait = self._drawn_at + MIN_REDRAW_S - time.monotonic()
        if wait <= 0:
            self._draw()
        else:
            self._pending = True
            self.set_timer(wait, self._draw)

    def _draw(self) -> None:
        self._pending = False
        self._drawn_at = time.monotonic()
        self.query_one(".legend", Static).update(self._legend())
        canvas = self.query_one(_Canvas)
        canvas.clear()
        columns = max(10, canvas.size.width - canvas.margin_left - 2)
        dark = self.app.current_theme.dark
        for curve in self.curves:
            self._plot(canvas, curve, columns, color_of(curve, dark))
        self._set_limits(canvas)

    def _plot(self, canvas: PlotWidget, curve: Curve, columns: int, color: str) -> None:
        for edge in (curve.lower, curve.upper):
            if edge is not None:
                steps, values = thin(curve.steps, edge, columns)
                canvas.plot(steps, values, line_style=f"dim {color}",
                            hires_mode=HiResMode.BRAILLE)
        steps, values = thin(curve.steps, curve.values, columns)
        if curve.marks != "points":
            canvas.plot(steps, values, line_style=color, hires_mode=HiResMode.BRAILLE)
        few = np.isfinite(values).sum() < min(MARKERS_BELOW, columns // 3 or 1)
        if curve.marks == "points" or (curve.marks == "auto" and few):
            canvas.scatter(steps, values, marker="•", marker_style=color)

    def _set_limits(self, canvas: PlotWidget) -> None:
        """Limits a little wider than the data, so that points on the edge (the best value, the
        first step) are drawn inside; a flat line (a constant noise scale, one evaluation) gets
        a visible range. Ticks within the data, as many as have room (`nice_ticks`); the left
        margin as wide as the longest label."""
        values = [v for c in self.curves for v in (c.values, c.lower, c.upper) if v is not None]
        finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
        steps = np.concatenate([c.steps for c in self.curves]) if self.curves else np.array([])
        if not len(finite) or not len(steps):
            canvas.set_ylimits(None, None)
            canvas.set_xlimits(None, None)
            canvas.set_yticks([])  # no numbers on an empty plot
            canvas.set_xticks([])
            return
        lo, hi = float(finite.min()), float(finite.max())
        first, last = float(steps.min()), float(steps.max())
        rows = canvas.size.height - canvas.margin_top - canvas.margin_bottom
        y_ticks = nice_ticks(lo, hi, 1 + int(max(0, rows - 1) / ROWS_PER_TICK))
        canvas.margin_left = min(MARGIN_MAX, 2 + max(map(len, tick_labels(y_ticks)),
                                                     default=4))
        columns = canvas.size.width - canvas.margin_left
        canvas.set_yticks(y_ticks)
        canvas.set_xticks(nice_ticks(first, last, 1 + max(0, columns) // COLUMNS_PER_TICK,
                                     integer=True))
        canvas.set_ylimits(*_padded(lo, hi))
        canvas.set_xlimits(*_padded(first, last))

    def _legend(self) -> Text:
        """One line whatever the width (plots side by side stay aligned): each curve's label
        gets an equal share of the width, cut with an ellipsis."""
        text = Text(printable(self.key or "-"), style="bold", no_wrap=True, overflow="ellipsis")
        labels = [printable(c.label) + (" ±95% CI" if c.lower is not None else "")
                  for c in self.curves]
        share = label_share(self.size.width - 2 - len(text), len(labels))
        for curve, label in zip(self.curves, labels, strict=True):
            text.append("  ")
            text.append("• " if curve.marks == "points" else "━ ",
                        style=color_of(curve, self.app.current_theme.dark))
            text.append(label if len(label) <= share else label[:share - 1] + "…")
        if self.note:
            text.append(f"  {printable(self.note)}", style="italic")
        elif not self.curves:
            text.append("  no data yet", style="italic")
        return text


def label_share(width: int, count: int, least: int = 6) -> int:
    """Characters each of `count` legend labels may take in `width` (4 of each share go to
    the gap and the line sample), at least `least`."""
    return max(least, width // max(1, count) - 4)


def _padded(lo: float, hi: float, share: float = 0.04) -> tuple[float, float]:
    """[lo, hi] widened by `share` of its span on each side (a flat range by 10%, at least 1)."""
    flat = hi - lo < 1e-9 * max(1.0, abs(hi))
    pad = max(1.0, abs(hi) * 0.1) if flat else (hi - lo) * share
    return lo - pad, hi + pad


def thin(steps: np.ndarray, values: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """About two points per column, keeping each bucket's extremes; NaNs dropped."""
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    return downsample(steps, values, max(2, 2 * columns)) if len(steps) else (steps, values)
