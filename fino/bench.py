"""Throughput of the agent (updates/s, acting latency, the entropy update) and FINO's overhead over
FQL per update and per online step, at the paper's network size (4x512) and the quick presets'
(2x256), on the CPU or CUDA. Yields one figure at a time; never asserts a time.

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
# Network size -> (hidden dims, online steps between entropy updates in the matching preset).
SIZES: dict[str, tuple[tuple[int, ...], int]] = {"paper": ((512, 512, 512, 512), 50_000),
                                                 "quick": ((256, 256), 2_000)}
ALGOS = ("fino", "fql")

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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU = torch.device("cpu")


def _median_rate(fn: Callable[[], object], calls: int, repeats: int,
                 device: torch.device = CPU) -> float:
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        rates.append(calls / (time.perf_counter() - start))
    return statistics.median(rates)


def agent_config(size: str, algo: str) -> AgentConfig:
    """The paper's agent at `size`; FQL = no injected noise and one candidate (spec §6)."""
    hidden = SIZES[size][0]
    fql = {"noise_scale": 0.0, "num_candidates": 1} if algo == "fql" else {}
    return AgentConfig(actor_hidden_dims=hidden, value_hidden_dims=hidden, **fql)


def _variant(compile: bool, precision: Precision = "fp32") -> str:
    return f"{'compiled' if compile else 'eager'}+{current_matmul()}+{precision}"


def _common(size: str, algo: str, device: torch.device) -> dict[str, Any]:
    return {"size": size, "algo": algo, "device": device.type}


def bench_updates(shape: str, size: str, algo: str, *, compile: bool, precision: Precision,
                  device: torch.device, calls: int, repeats: int) -> Figure:
    obs_dim, action_dim = SHAPES[shape]
    torch._dynamo.reset()  # each agent compiles afresh (see fino/bench_pack.py)
    agent = FinoAgent(obs_dim, action_dim, agent_config(size, algo), compile=compile,
                      precision=precision, device=device)
    batch = synthetic_batch(obs_dim, action_dim, agent.config.batch_size).to(device)
    start = time.perf_counter()
    for _ in range(5):
        agent.update(batch)
    warmup = time.perf_counter() - start
    rate = _median_rate(lambda: agent.update(batch), calls, repeats, device)
    extra: dict[str, Any] = {**_common(size, algo, device),
                             "warmup_seconds": round(warmup, 2)}
    if size == "paper" and algo == "fino" and device.type == "cpu":
        ref = REFERENCE[shape]["updates_per_second"]
        extra.update(reference_jax=ref, ratio_to_reference=round(rate / ref, 3),
                     target_ratio=TARGETS["updates_per_second"])
    return Figure("updates_per_second", shape, _variant(compile, precision), rate, "updates/s",
                  extra)


def bench_act(shape: str, size: str, algo: str, *, greedy: bool, compile: bool,
              device: torch.device, calls: int, repeats: int) -> Figure:
    obs_dim, action_dim = SHAPES[shape]
    torch._dynamo.reset()  # each agent compiles afresh (see fino/bench_pack.py)
    agent = FinoAgent(obs_dim, action_dim, agent_config(size, algo), compile=compile,
                      device=device)
    obs = torch.randn(obs_dim)
    for _ in range(50):
        agent.act(obs, greedy=greedy)
    ms = 1000.0 / _median_rate(lambda: agent.act(obs, greedy=greedy), calls, repeats, device)
    variant = f"{'compiled' if compile else 'eager'}+{'greedy' if greedy else 'exploring'}"
    extra: dict[str, Any] = {**_common(size, algo, device),
                             "num_candidates": agent.config.num_candidates}
    if size == "paper" and algo == "fino" and device.type == "cpu":
        ref = REFERENCE[shape]["act_ms"]
        extra.update(reference_jax=ref, ratio_to_reference=round(ms / ref, 3),
                     target_ms=TARGETS["act_ms"])
    return Figure("act_ms", shape, variant, ms, "ms", extra)


def bench_entropy(shape: str, size: str, *, device: torch.device, sklearn: bool,
                  compile: bool = True) -> Iterator[Figure]:
    """FINO's entropy update: sample 256 states x 200 actions from the exploring policy, fit
    the batched GMM (and, with `sklearn`, the reference loop for comparison)."""
    obs_dim, action_dim = SHAPES[shape]
    torch._dynamo.reset()
    agent = FinoAgent(obs_dim, action_dim, agent_config(size, "fino"), compile=compile,
                      device=device)
    cfg = agent.config
    obs = torch.randn(cfg.entropy_states, obs_dim)
    agent.sample_exploration_actions(obs[:8], 4)  # warm-up (compiles the sampler)
    _sync(device)
    start = time.perf_counter()
    samples = agent.sample_exploration_actions(obs, cfg.entropy_samples)
    _sync(device)
    sampling = time.perf_counter() - start
    gmm_entropy_batched(samples[:4], cfg.gmm_components)  # warm-up
    fits = []
    for _ in range(3):
        start = time.perf_counter()
        batched = gmm_entropy_batched(samples, cfg.gmm_components).mean().item()
        fits.append(time.perf_counter() - start)
    fit = statistics.median(fits)
    common = {**_common(size, "fino", device), "states": cfg.entropy_states,
              "samples": cfg.entropy_samples, "components": cfg.gmm_components,
              "num_candidates": cfg.num_candidates}
    reference = REFERENCE[shape] if size == "paper" and device.type == "cpu" else None
    sampling_extra = {} if reference is None else {
        "reference_jax": reference["entropy_sampling_seconds"],
        "speedup_vs_reference": round(reference["entropy_sampling_seconds"] / sampling, 2)}
    yield Figure("entropy_sampling_seconds", shape, "compiled" if compile else "eager", sampling,
                 "s",
                 {**common, **sampling_extra})
    yield Figure("entropy_fit_seconds", shape, "batched", fit, "s",
                 {**common, "entropy": round(batched, 4)})
    update_extra: dict[str, Any] = {}
    if sklearn:
        start = time.perf_counter()
        loop_entropy = float(gmm_entropy_sklearn(samples.cpu(), cfg.gmm_components).mean())
        loop = time.perf_counter() - start
        yield Figure("entropy_fit_seconds", shape, "sklearn", loop, "s",
                     {**common, "entropy": round(loop_entropy, 4),
                      "speedup_batched_vs_sklearn": round(loop / fit, 1),
                      "entropy_relative_difference": round(
                          abs(batched - loop_entropy) / abs(loop_entropy), 4),
                      "target_speedup": TARGETS["entropy_fit_speedup"]})
        if reference is not None:
            reference_update = reference["entropy_sampling_seconds"] + loop
            update_extra = {"reference_jax_plus_sklearn": round(reference_update, 2),
                            "speedup_vs_reference": round(reference_update / (sampling + fit), 2)}
    yield Figure("entropy_update_seconds", shape, "batched", sampling + fit, "s",
                 {**common, **update_extra})


def overhead(shape: str, size: str, device: torch.device, figures: list[Figure]
             ) -> Iterator[Figure]:
    """FINO / FQL per update and per online step (update + exploring act + FINO's entropy
    update amortised over the preset's `entropy_interval`), from the figures of one shape and
    size measured with the same settings."""
    def value(name: str, algo: str) -> float | None:
        return next((f.value for f in figures if f.figure == name and f.extra["algo"] == algo),
                    None)

    update = {a: value("updates_per_second", a) for a in ALGOS}
    act = {a: value("act_ms", a) for a in ALGOS}
    if None in (*update.values(), *act.values()):
        return
    entropy = next((f.value for f in figures if f.figure == "entropy_update_seconds"), 0.0)
    interval = SIZES[size][1]
    update_ms = {a: 1000.0 / update[a] for a in ALGOS}  # type: ignore[operator]
    step_ms = {a: update_ms[a] + act[a] for a in ALGOS}  # type: ignore[operator]
    step_ms["fino"] += 1000.0 * entropy / interval
    common = {**_common(size, "fino/fql", device), "entropy_interval": interval}
    variant = next(f.variant for f in figures if f.figure == "updates_per_second")
    yield Figure("fino_over_fql_update", shape, variant, update_ms["fino"] / update_ms["fql"],
                 "ratio", {**common, "fino_ms": round(update_ms["fino"], 3),
                           "fql_ms": round(update_ms["fql"], 3)})
    yield Figure("fino_over_fql_online_step", shape, variant, step_ms["fino"] / step_ms["fql"],
                 "ratio", {**common, "fino_ms": round(step_ms["fino"], 3),
                           "fql_ms": round(step_ms["fql"], 3)})


def matmul_gflops(device: torch.device = CPU) -> float:
    """fp32 throughput of a 256x512 @ 512x512 matmul under the current settings."""
    a = torch.randn(256, 512, device=device)
    b = torch.randn(512, 512, device=device)
    return 2 * 256 * 512 * 512 / 1e9 * _median_rate(lambda: a @ b, 200, 5, device)


def resolve_device(device: str) -> torch.device:
    """`auto`: CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this torch build sees no CUDA device")
    return torch.device(device)


def run_benchmark(
    shapes: list[str],
    *,
    sizes: tuple[str, ...] = ("paper", "quick"),
    device: str = "auto",
    matmul: str = "auto",
    compile: bool = True,
    extra_variants: bool = True,
    calls: int = 20,
    repeats: int = 5,
    entropy: bool = True,
    sklearn: bool = True,
) -> Iterator[Figure]:
    """All figures for the given shapes and sizes, one at a time (so callers print as they come):
    per size FINO and FQL updates/s and acting latency, FINO's entropy update, the FINO/FQL
    ratios; at the paper size also the eager and bf16 updates and greedy acting
    (`extra_variants`). `compile=False` measures eager code only (fast, for smoke tests)."""
    for shape in shapes:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; known: {sorted(SHAPES)}")
    for size in sizes:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; known: {sorted(SIZES)}")
    dev = resolve_device(device)
    mode = configure_matmul(matmul)  # type: ignore[arg-type]
    yield Figure("matmul_gflops", "256x512x512", mode, matmul_gflops(dev), "GFLOP/s",
                 {"threads": torch.get_num_threads(), "torch": torch.__version__,
                  "device": dev.type, **({"gpu": torch.cuda.get_device_name(dev)}
                                         if dev.type == "cuda" else {})})
    for shape in shapes:
        for size in sizes:
            measured: list[Figure] = []
            for algo in ALGOS:
                for figure in (
                        bench_updates(shape, size, algo, compile=compile, precision="fp32",
                                      device=dev, calls=calls, repeats=repeats),
                        bench_act(shape, size, algo, greedy=False, compile=compile, device=dev,
                                  calls=200, repeats=repeats)):
                    measured.append(figure)
                    yield figure
            if extra_variants and size == "paper":
                if compile:  # the eager fp32 and the compiled bf16 update beside the main one
                    for comp, precision in ((False, "fp32"), (True, "bf16")):
                        yield bench_updates(shape, size, "fino", compile=comp,
                                            precision=precision, device=dev, calls=calls,
                                            repeats=repeats)
                yield bench_act(shape, size, "fino", greedy=True, compile=compile, device=dev,
                                calls=200, repeats=repeats)
            if entropy:
                for figure in bench_entropy(shape, size, device=dev, sklearn=sklearn,
                                            compile=compile):
                    measured.append(figure)
                    yield figure
            yield from overhead(shape, size, dev, measured)
