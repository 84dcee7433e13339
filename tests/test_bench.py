"""`fino bench`: the figures it reports fit together (no timing is asserted)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fino.bench import run_benchmark
from fino.cli.main import app


def test_fino_and_fql_are_measured_and_the_overhead_is_their_ratio() -> None:
    figures = list(run_benchmark(["cube-double"], sizes=("quick",), device="cpu", compile=False,
                                 extra_variants=False, calls=2, repeats=1, entropy=False))
    by = {(f.figure, f.extra.get("algo")): f for f in figures}
    assert by[("act_ms", "fino")].extra["num_candidates"] == 3
    assert by[("act_ms", "fql")].extra["num_candidates"] == 1
    fino_ms = 1000 / by[("updates_per_second", "fino")].value
    fql_ms = 1000 / by[("updates_per_second", "fql")].value
    update = by[("fino_over_fql_update", "fino/fql")]
    assert update.value == pytest.approx(fino_ms / fql_ms)
    step = by[("fino_over_fql_online_step", "fino/fql")]
    assert step.extra["fino_ms"] == pytest.approx(fino_ms + by[("act_ms", "fino")].value,
                                                  abs=1e-3)
    assert {f.extra.get("size") for f in figures if f.figure != "matmul_gflops"} == {"quick"}


def test_unknown_sizes_and_devices_are_refused() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--size", "huge"])
    assert result.exit_code != 0 and "unknown size(s) ['huge']" in result.output
    result = runner.invoke(app, ["bench", "--device", "cuda:7", "--size", "quick"])
    import torch

    if not torch.cuda.is_available():
        assert result.exit_code != 0 and "sees no CUDA device" in result.output


def test_pack_figures_report_seed_updates_as_pack_size_times_updates() -> None:
    from fino.bench_pack import run_pack_benchmark

    figures = list(run_pack_benchmark("cube-double", [1, 2], sizes=("quick",), device="cpu",
                                      compile=False, calls=2, repeats=1, online=False,
                                      versus_processes=False))
    assert [f.extra["pack"] for f in figures] == [1, 2]
    for f in figures:
        assert f.figure == "pack_updates_per_second" and f.extra["matmul_precision"] == "fp32"
        # seed-updates/s is stored rounded to 2 decimals: at a few updates/s (a loaded
        # machine) that rounding, not the product, sets the tolerance.
        assert f.extra["seed_updates_per_second"] == pytest.approx(f.extra["pack"] * f.value,
                                                                   rel=1e-3, abs=0.005)
    assert figures[1].extra["state_mib"] == pytest.approx(2 * figures[0].extra["state_mib"])


def test_bad_pack_sizes_are_refused_before_any_work() -> None:
    result = CliRunner().invoke(app, ["bench", "--pack", "0,8"])
    assert result.exit_code != 0 and "pack sizes >= 1" in result.output
    result = CliRunner().invoke(app, ["bench", "--pack", "eight"])
    assert result.exit_code != 0 and "pack sizes >= 1" in result.output
