"""The plots' axis ticks: within the data, few enough for the room, at a 1-2-5 step, labelled
with distinct, correct numbers."""

from __future__ import annotations

import math

import pytest

from fino_tui.widgets.ticks import nice_ticks, tick_labels


@pytest.mark.parametrize("lo, hi, most", [(0.0, 6.0, 3), (1.0, 6.0, 4), (-1.2, 0.3, 5),
                                          (0.10851, 0.10852, 3), (0.0, 1e6, 11),
                                          (3e-5, 9e-5, 4), (-50.0, 1e4, 7)])
def test_ticks_lie_in_the_data_at_a_nice_step_and_fit_the_room(lo: float, hi: float,
                                                               most: int) -> None:
    ticks = nice_ticks(lo, hi, most)
    assert 1 <= len(ticks) <= most
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    assert ticks == sorted(ticks)
    if len(ticks) > 1:
        step = ticks[1] - ticks[0]
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0)


def test_a_short_plot_labels_its_ticks_with_their_own_values() -> None:
    # Values 1 to 6 on a plot with room for three labels: what is written is where it is.
    ticks = nice_ticks(1.0, 6.0, 3)
    assert ticks == [2.0, 4.0, 6.0]
    assert tick_labels(ticks) == ["2", "4", "6"]
    assert tick_labels(nice_ticks(0.0, 6.0, 4)) == ["0", "2", "4", "6"]


def test_labels_are_distinct_even_for_a_narrow_range() -> None:
    labels = tick_labels(nice_ticks(0.108510, 0.108520, 3))
    assert labels == ["0.108510", "0.108515", "0.108520"]
    assert len(set(labels)) == len(labels)


def test_zero_large_and_small_values_read_plainly() -> None:
    assert tick_labels(nice_ticks(-1.2, 0.3, 4)) == ["-1.0", "-0.5", "0"]
    assert tick_labels(nice_ticks(0.0, 50_000.0, 6, integer=True)) == [
        "0", "10k", "20k", "30k", "40k", "50k"]
    assert tick_labels([1.5e-5]) == ["1.5e-5"]
    assert tick_labels([-0.0]) == ["0"]


def test_steps_get_whole_ticks_and_one_point_gets_one_tick() -> None:
    assert nice_ticks(0.0, 0.0, 5, integer=True) == [0.0]  # one evaluation: its step alone
    assert nice_ticks(1000.0, 1000.0, 5, integer=True) == [1000.0]
    assert nice_ticks(0.0, 3.0, 8, integer=True) == [0.0, 1.0, 2.0, 3.0]
    assert nice_ticks(0.0, 2000.0, 8, integer=True) == [0.0, 500.0, 1000.0, 1500.0, 2000.0]
    assert nice_ticks(0.2, 0.6, 4, integer=True) == [0.2]  # no whole number inside
    assert nice_ticks(0.0, 1e-4, 8, integer=True) == [0.0]


def test_nothing_to_tick() -> None:
    assert nice_ticks(float("nan"), 1.0, 5) == []
    assert nice_ticks(2.0, 1.0, 5) == []
    assert tick_labels([]) == []
