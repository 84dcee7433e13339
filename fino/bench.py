"""Throughput benchmark of the agent at the paper's network size (issue: updates/s, acting,
entropy). Prints one JSON object per figure; never asserts a time.

Reference figures are quoted, not re-measured by this script: a JAX re-creation of the
authors' FQL/FINO update (jax 0.10.2, flax 0.12.8, optax 0.2.8; the whole update one jax.jit)
measured on a development machine on 2026-11-24 (2 vCPUs, AMD EPYC with AVX-512, ~170 GFLOP/s
fp32 matmul). `matmul_gflops` is printed first so that a run elsewhere can tell how its machine
compares; on another machine compare ratios, not absolute times.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from fino.algo import AgentConfig, Batch, FinoAgent
from fino.algo.agent import Precision
from fino.algo.gmm import gmm_entropy_batched, gmm_entropy_sklearn
from fino.algo.matmul import configure_matmul, current_matmul

SHAPES: dict[str, tuple[int, int]] = {"cube-double": (40, 5), "humanoidmaze": (69, 21)}

# JAX anchor on the development machine (see the module docstring): updates/s (median of 5x20
# after compilation), acting ms for one observation with K candidates, and seconds to sample
# 256 states x 200 actions from the exploring policy (its best chunking).
REFERENCE: dict[str, dict[str, float]] = {
    "cube-double": {"updates_per_second": 11.91, "act_ms": 0.71, "entropy_sampling_seconds": 4.53},
    "humanoidmaze": {"updates_per_second": 11.16, "act_ms": 1.28,
                     "entropy_sampling_seconds": 22.86},
}
TARGETS = {"updates_per_second": 1.2, "act_ms": 0.3, "entropy_fit_speedup": 20.0}


@dataclass(frozen=True)
class Figure:
    figure: str
    shape: str
    variant: str
    value: float
    unit: str
    extra: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"figure": self.figure, "shape": self.shape, "variant": self.variant,
                "value": round(self.value, 4), "unit": self.unit, **self.extra}


def synthetic_batch(obs_dim: int, action_dim: int, batch_size: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        observations=torch.randn(batch_size, obs_dim, generator=g),
        actions=torch.rand(batch_size, action_dim, generator=g) * 2 - 1,
        rewards=-torch.ones(batch_size),
        next_observations=torch.randn(batch_size, obs_dim, generator=g),
        terminated=torch.zeros(batch_size),
    )


def _median_rate(fn: Callable[[], object], calls: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(calls / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_updates(shape: str, *, compile: bool, precision: Precision, calls: int,
                  repeats: int) -> Figure:
    obs_dim, action_dim = SHAPES[shape]
    agent = FinoAgent(obs_dim, action_dim, AgentConfig(), compile=compile, precision=precision)
    batch = synthetic_batch(obs_dim, action_dim, agent.config.batch_size)
    start = time.perf_counter()
    for _ in range(5):
        agent.update(batch)
    warmup = time.perf_counter() - start
    rate = _median_rate(lambda: agent.update(batch), calls, repeats)
    ref = REFERENCE[shape]["updates_per_second"]
    return Figure("updates_per_second", shape, _variant(compile, precision), rate, "updates/s",
                  {"warmup_seconds": round(warmup, 2), "reference_jax": ref,
                   "ratio_to_reference": round(rate / ref, 3),
                   "target_ratio": TARGETS["updates_per_second"]})


def bench_act(shape: str, *, greedy: bool, compile: bool, calls: int, repeats: int) -> Figure:
    obs_dim, action_dim = SHAPES[shape]
    agent = FinoAgent(obs_dim, action_dim, AgentConfig(), compile=compile)
    obs = torch.randn(obs_dim)
    for _ in range(50):
        agent.act(obs, greedy=greedy)
    ms = 1000.0 / _median_rate(lambda: agent.act(obs, greedy=greedy), calls, repeats)
    ref = REFERENCE[shape]["act_ms"]
    variant = f"{'compiled' if compile else 'eager'}+{'greedy' if greedy else 'exploring'}"
    return Figure("act_ms", shape, variant, ms, "ms",
                  {"num_candidates": agent.config.num_candidates, "reference_jax": ref,
                   "ratio_to_reference": round(ms / ref, 3), "target_ms": TARGETS["act_ms"]})


def bench_entropy(shape: str, *, sklearn: bool) -> Iterator[Figure]:
    obs_dim, action_dim = SHAPES[shape]
    agent = FinoAgent(obs_dim, action_dim, AgentConfig(), compile=True)
    cfg = agent.config
    obs = torch.randn(cfg.entropy_states, obs_dim)
    agent.sample_exploration_actions(obs[:8], 4)  # warm-up (compiles the sampler)
    start = time.perf_counter()
    samples = agent.sample_exploration_actions(obs, cfg.entropy_samples)
    sampling = time.perf_counter() - start
    gmm_entropy_batched(samples[:4], cfg.gmm_components)  # warm-up
    fits = []
    for _ in range(3):
        start = time.perf_counter()
        batched = gmm_entropy_batched(samples, cfg.gmm_components).mean().item()
        fits.append(time.perf_counter() - start)
    fit = statistics.median(fits)
    ref = REFERENCE[shape]
    common = {"states": cfg.entropy_states, "samples": cfg.entropy_samples,
              "components": cfg.gmm_components, "num_candidates": cfg.num_candidates}
    yield Figure("entropy_sampling_seconds", shape, "compiled", sampling, "s",
                 {**common, "reference_jax": ref["entropy_sampling_seconds"],
                  "speedup_vs_reference": round(ref["entropy_sampling_seconds"] / sampling, 2)})
    yield Figure("entropy_fit_seconds", shape, "batched", fit, "s",
                 {**common, "entropy": round(batched, 4)})
    if sklearn:
        start = time.perf_counter()
        reference = float(gmm_entropy_sklearn(samples, cfg.gmm_components).mean())
        loop = time.perf_counter() - start
        yield Figure("entropy_fit_seconds", shape, "sklearn", loop, "s",
                     {**common, "entropy": round(reference, 4),
                      "speedup_batched_vs_sklearn": round(loop / fit, 1),
                      "entropy_relative_difference": round(
                          abs(batched - reference) / abs(reference), 4),
                      "target_speedup": TARGETS["entropy_fit_speedup"]})
        reference_update = ref["entropy_sampling_seconds"] + loop
        yield Figure("entropy_update_seconds", shape, "batched", sampling + fit, "s",
                     {**common, "reference_jax_plus_sklearn": round(reference_update, 2),
                      "speedup_vs_reference": round(reference_update / (sampling + fit), 2)})


def _variant(compile: bool, precision: Precision = "fp32") -> str:
    return f"{'compiled' if compile else 'eager'}+{current_matmul()}+{precision}"


def matmul_gflops() -> float:
    """fp32 throughput of a 256x512 @ 512x512 matmul under the current settings."""
    a, b = torch.randn(256, 512), torch.randn(512, 512)
    return 2 * 256 * 512 * 512 / 1e9 * _median_rate(lambda: a @ b, 200, 5)


def run_benchmark(
    shapes: list[str],
    *,
    matmul: str = "auto",
    variants: tuple[tuple[bool, Precision], ...] = ((False, "fp32"), (True, "fp32"),
                                                      (True, "bf16")),
    calls: int = 20,
    repeats: int = 5,
    entropy: bool = True,
    sklearn: bool = True,
) -> Iterator[Figure]:
    """All figures for the given shapes, one at a time (so callers can print as they come).

    `variants` are (torch.compile, precision) pairs for the update benchmark."""
    for shape in shapes:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; known: {sorted(SHAPES)}")
    mode = configure_matmul(matmul)  # type: ignore[arg-type]
    yield Figure("matmul_gflops", "256x512x512", mode, matmul_gflops(), "GFLOP/s",
                 {"threads": torch.get_num_threads(), "torch": torch.__version__})
    for shape in shapes:
        for compile, precision in variants:
            yield bench_updates(shape, compile=compile, precision=precision, calls=calls,
                                repeats=repeats)
        for compile in (False, True):
            for greedy in (False, True):
                yield bench_act(shape, greedy=greedy, compile=compile, calls=200,
                                repeats=repeats)
        if entropy:
            yield from bench_entropy(shape, sklearn=sklearn)
