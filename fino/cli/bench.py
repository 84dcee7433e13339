"""`fino bench`: the agent's throughput and FINO's overhead over FQL, as JSON lines and a table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fino.bench_estimate import RECORDED


def bench(
    shape: Annotated[list[str] | None, typer.Option(
        help="Observation/action shapes (repeatable): cube-double, humanoidmaze. "
             "Default: cube-double.")] = None,
    size: Annotated[list[str] | None, typer.Option(
        help="Network sizes (repeatable): paper (4x512), quick (2x256). Default: both.")] = None,
    device: Annotated[str, typer.Option(
        help="auto (CUDA when present), cpu, cuda, cuda:N.")] = "auto",
    matmul: Annotated[str, typer.Option(
        help="fp32 matmul path: auto (oneDNN when it is fp32-exact), ieee, onednn.")] = "auto",
    eager_only: Annotated[bool, typer.Option(
        help="Eager code only (no torch.compile, no bf16): fast, for a smoke test.")] = False,
    quick: Annotated[bool, typer.Option(
        help="Fewer repeats; skip the sklearn GMM loop and the extra paper-size variants.")
    ] = False,
    output: Annotated[Path, typer.Option(
        help="Also append the JSON lines here (where `fino queue add` and `fino tune` look for "
             "this machine's figures to estimate a run's time).")] = RECORDED,
    pack: Annotated[str | None, typer.Option(
        help="Seed packs instead: comma-separated pack sizes, e.g. 1,8,32 (updates/s and "
             "seed-updates/s, memory, an online step, and on a CPU N separate processes).")
    ] = None,
) -> None:
    """Measure the speed of updates and acting, and FINO's cost over FQL.

    Updates/s, acting latency, the entropy update, and FINO's cost over FQL per update and per
    online step. JSON lines on stdout, a table on stderr.

    Example: fino bench --size quick --output bench.jsonl
    """
    from fino.bench import SHAPES, SIZES, run_benchmark  # torch: only when the command runs

    err = Console(stderr=True)
    if pack is not None:
        _bench_packs(pack, shape, size, device, eager_only, quick, output, err)
        return
    shapes = shape or ["cube-double"]
    sizes = tuple(size or SIZES)
    for given, known, what in ((shapes, SHAPES, "shape"), (sizes, SIZES, "size")):
        unknown = [s for s in given if s not in known]
        if unknown:
            raise typer.BadParameter(f"unknown {what}(s) {unknown}; known: {', '.join(known)}")
    try:
        figures = run_benchmark(shapes, sizes=sizes, device=device, matmul=matmul,
                                compile=not eager_only, extra_variants=not quick,
                                calls=10 if quick else 20, repeats=3 if quick else 5,
                                sklearn=not quick)
        rows = _stream(figures, output, err, lambda f: f"{f.figure} {f.shape} "
                       f"{f.extra.get('size', '')} {f.extra.get('algo', '')}")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    err.print(summary_table(rows))


def _pack_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 for n in sizes):
        raise typer.BadParameter(f"--pack {text!r}: give pack sizes >= 1, e.g. 1,8,32")
    return sizes


def _bench_packs(text: str, shape: list[str] | None, size: list[str] | None, device: str,
                 eager_only: bool, quick: bool, output: Path | None, err: Console) -> None:
    from fino.bench import SIZES
    from fino.bench_pack import run_pack_benchmark

    packs = _pack_sizes(text)
    sizes = tuple(size or SIZES)
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise typer.BadParameter(f"unknown size(s) {unknown}; known: {', '.join(SIZES)}")
    if shape and len(shape) > 1:
        raise typer.BadParameter("--pack measures one --shape at a time")
    try:
        figures = run_pack_benchmark((shape or ["cube-double"])[0], packs, sizes=sizes,
                                     device=device, compile=not eager_only,
                                     calls=10 if quick else 20, repeats=3 if quick else 5,
                                     online=not quick, versus_processes=not quick)
        rows = _stream(figures, output, err, lambda f: f"{f.figure} "
                       f"{f.extra.get('size', '')} pack {f.extra.get('pack')}")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    err.print(pack_table(rows))


def _stream(figures: Iterable[Any], output: Path | None, err: Console,
            describe: Callable[[Any], str]) -> list[Any]:
    """Print each figure as a JSON line as it comes (and append it to `output`), with a live
    status line on stderr; returns them all."""
    rows = []
    with err.status("benchmarking…") as status:
        for figure in figures:
            line = json.dumps(figure.as_dict())
            typer.echo(line)
            if output is not None:
                output.parent.mkdir(parents=True, exist_ok=True)
                with output.open("a") as f:
                    f.write(line + "\n")
            rows.append(figure)
            status.update(f"benchmarking… last: {describe(figure)}")
    return rows


def pack_table(figures: list) -> Table:
    """One row per (size, pack size, matmul precision)."""
    table = Table(title="fino bench --pack (median of repeats)")
    table.caption = ("seed-upd/s = pack size × updates/s; step = packed update + one act for "
                     "N observations + N env steps; × procs = pack / N separate processes")
    for column in ("size", "pack", "matmul", "upd/s", "seed-upd/s", "memory MiB", "step ms",
                   "× procs"):
        table.add_column(column, justify="left" if column in ("size", "matmul") else "right")

    def find(name: str, size: str, n: int) -> Any:
        return next((f for f in figures if f.figure == name and f.extra.get("size") == size
                     and f.extra.get("pack") == n), None)

    for f in figures:
        if f.figure != "pack_updates_per_second":
            continue
        size, n = f.extra["size"], f.extra["pack"]
        step, ratio = find("pack_online_step_ms", size, n), find("pack_over_processes", size, n)
        memory = f.extra.get("peak_device_mib", f.extra["state_mib"])
        table.add_row(size, str(n), f.extra["matmul_precision"], f"{f.value:.3g}",
                      f"{f.extra['seed_updates_per_second']:.4g}", f"{memory:.4g}",
                      "–" if step is None else f"{step.value:.3g}",
                      "–" if ratio is None else f"{ratio.value:.2f}")
    return table


def summary_table(figures: list) -> Table:
    """One row per (shape, size): FINO and FQL side by side, and the ratios."""
    table = Table(title="fino bench (median of repeats)")
    table.caption = ("×: FINO / FQL; a step = update + exploring act (+ FINO's entropy update "
                     "amortised over the preset's interval)")
    for column in ("shape", "size", "upd/s FINO", "upd/s FQL", "act ms FINO", "act ms FQL",
                   "entropy s", "× update", "× step"):
        table.add_column(column, justify="left" if column in ("shape", "size") else "right")
    keys = dict.fromkeys((f.shape, f.extra["size"]) for f in figures if "size" in f.extra)

    def get(shape: str, size: str, name: str, algo: str | None = None) -> str:
        for f in figures:
            # The first figure of a kind is the main setting (extra variants come after it).
            if f.figure == name and f.shape == shape and f.extra.get("size") == size and (
                    algo is None or f.extra.get("algo") == algo):
                return f"{f.value:.3g}" if f.unit != "ratio" else f"{f.value:.2f}"
        return "–"

    for shape, size in keys:
        table.add_row(shape, size, get(shape, size, "updates_per_second", "fino"),
                      get(shape, size, "updates_per_second", "fql"),
                      get(shape, size, "act_ms", "fino"), get(shape, size, "act_ms", "fql"),
                      get(shape, size, "entropy_update_seconds"),
                      get(shape, size, "fino_over_fql_update"),
                      get(shape, size, "fino_over_fql_online_step"))
    return table
