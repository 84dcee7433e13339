"""`fino bench`: the agent's throughput figures as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def bench(
    shape: Annotated[list[str] | None, typer.Option(
        help="Shapes to measure (repeatable): cube-double, humanoidmaze. Default: all.")] = None,
    matmul: Annotated[str, typer.Option(
        help="fp32 matmul path: auto (oneDNN when it is fp32-exact), ieee, onednn.")] = "auto",
    eager_only: Annotated[bool, typer.Option(
        help="Only the eager fp32 update (skip torch.compile and bf16).")] = False,
    quick: Annotated[bool, typer.Option(help="Fewer repeats; skip the sklearn loop.")] = False,
    output: Annotated[Path | None, typer.Option(help="Also append the JSON lines here.")] = None,
) -> None:
    """Measure updates/s, acting latency and the entropy update at the paper's network size."""
    from fino.bench import SHAPES, run_benchmark  # torch: only when the command runs

    err = Console(stderr=True)
    shapes = shape or list(SHAPES)
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise typer.BadParameter(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    figures = run_benchmark(
        shapes, matmul=matmul,
        variants=((False, "fp32"),) if eager_only else ((False, "fp32"), (True, "fp32"),
                                                         (True, "bf16")),
        calls=10 if quick else 20, repeats=3 if quick else 5, sklearn=not quick)
    with err.status("benchmarking…") as status:
        for figure in figures:
            line = json.dumps(figure.as_dict())
            typer.echo(line)
            if output is not None:
                with output.open("a") as f:
                    f.write(line + "\n")
            status.update(f"benchmarking… last: {figure.figure} {figure.shape} {figure.variant}")
