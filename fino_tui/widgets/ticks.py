"""Axis ticks of the plots: few enough that each label has a row (or columns) of its own, at a
1-2-5 step within the data, labelled with just the digits that tell them apart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from textual_plot.axis_formatter import NumericAxisFormatter

STEPS = (1.0, 2.0, 5.0)
SUFFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
SUFFIX_FROM = 1e4  # 10k rather than 10000; below it, plain numbers
SINGLE_DIGITS = 4  # significant digits of a lone tick (one value, nothing to tell apart)


def nice_ticks(lo: float, hi: float, most: int, integer: bool = False) -> list[float]:
    """At most `most` ticks inside [lo, hi] at the smallest step of 1, 2 or 5 times a power of
    ten that leaves no more (whole steps when `integer`); [lo] for a single value."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo or most < 1:
        return []
    if hi == lo or most == 1:
        return [lo if hi == lo else (lo + hi) / 2]
    power = 10.0 ** math.floor(math.log10((hi - lo) / most))
    if integer:
        power = max(power, 1.0)
    for step in (m * power * scale for scale in (1, 10, 100) for m in STEPS):
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= most:
            break
    ticks = [round(k * step, 12) + 0.0 for k in range(first, last + 1)]  # + 0.0: no -0.0
    return ticks or [lo]


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels that tell the ticks apart with the fewest characters: decimals from the step
    between them, with k/M/G from 10k on where that is shorter, zero as 0; a lone tick with a
    few significant digits."""
    if not ticks:
        return []
    largest = max(abs(t) for t in ticks)
    suffixed = [(s, x) for s, x in SUFFIXES if largest >= max(s, SUFFIX_FROM)][:1]
    scales = [(1.0, ""), *suffixed]
    return min((_labels(ticks, scale, suffix) for scale, suffix in scales),
               key=lambda labels: max(map(len, labels)))


def _labels(ticks: Sequence[float], scale: float, suffix: str) -> list[str]:
    values = [t / scale for t in ticks]
    if len(values) == 1:
        return [_clean(f"{values[0]:.{SINGLE_DIGITS}g}") + suffix]
    step = min(abs(b - a) for a, b in pairwise(values))
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else SINGLE_DIGITS
    return ["0" if v == 0 else _clean(f"{v:.{decimals}f}") + suffix for v in values]


def _clean(label: str) -> str:
    """'-0' and '-0.00' read 0; an exponent without its padding zero (1e-05 -> 1e-5)."""
    if label.startswith("-") and not label.strip("-0.").split("e")[0]:
        label = label[1:]
    return label.replace("e-0", "e-").replace("e+0", "e+")


class TickLabels(NumericAxisFormatter):
    """textual-plot's numeric axis with the labels of `tick_labels`."""

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return tick_labels(ticks)
