"""Throughput of seed packs (`fino bench --pack 1,8,32`): updates/s and seed-updates/s per pack
size, peak device memory, the cost of one online step of a pack (a packed update, one batched
act for N observations, N steps of a real environment) and, on the CPU, the same seeds trained
as N separate processes on the same cores. Yields one figure at a time; never asserts a time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from fino.algo.agent import AgentPack, Batch
from fino.algo.matmul import configure_cuda_matmul, current_cuda_matmul
from fino.bench import (
    SHAPES,
    Figure,
    _median_rate,
    _sync,
    agent_config,
    resolve_device,
    synthetic_batch,
)

# Measured on one NVIDIA H200 (torch 2.11 CUDA build, paper size 4x512, batch 256, obs 40 /
# act 5, fp32 matmuls unless noted) and quoted by issue 21 / design/performance.md; printed
# beside the same rows measured here, as the figures to beat. Seed-updates/s.
REFERENCE_H200: dict[tuple[int, str], dict[str, float]] = {
    (1, "fp32"): {"this_project_before_packs": 151.0, "jax_reference": 546.0},
    (8, "fp32"): {"explicit_pack_prototype": 1905.0},
    (32, "fp32"): {"explicit_pack_prototype": 2525.0, "jax_vmap_reference": 2495.0},
    (128, "fp32"): {"explicit_pack_prototype": 2649.0},
    (32, "tf32"): {"explicit_pack_prototype": 4652.0},
}
TARGETS_H200 = {(1, "fp32"): 546.0, (32, "fp32"): 2500.0, (32, "tf32"): 4500.0}
ONLINE_ENV = "cube-double-play-singletask-task2-v0"


def _pack(size: str, n: int, device: torch.device, compile: bool, obs_dim: int,
          action_dim: int) -> AgentPack:
    # Dynamo caches compiled code per function and falls back to eager after 8 recompiles:
    # every pack measured in one process would recompile `losses`. Start each afresh.
    torch._dynamo.reset()
    return AgentPack(obs_dim, action_dim, agent_config(size, "fino"), seeds=range(n),
                     device=device, compile=compile)


def _state_mib(pack: AgentPack) -> float:
    """Parameters, targets, gradients and Adam's two moments, in MiB."""
    params = sum(p.numel() for net in (pack.bc_flow, pack.onestep, pack.critic)
                 for p in net.parameters())
    targets = sum(p.numel() for p in pack.target_critic.parameters())
    return 4 * (4 * params + targets) / 2**20


def bench_pack_updates(shape: str, size: str, n: int, *, device: torch.device,
                       matmul_precision: str = "fp32", compile: bool = True, calls: int = 20,
                       repeats: int = 5) -> Figure:
    """Packed updates/s of n members on synthetic batches; seed-updates/s = n x updates/s."""
    obs_dim, action_dim = SHAPES[shape]
    configure_cuda_matmul(matmul_precision, device)  # type: ignore[arg-type]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pack = _pack(size, n, device, compile, obs_dim, action_dim)
    batch = Batch.stack([synthetic_batch(obs_dim, action_dim, pack.config.batch_size, seed=i)
                         for i in range(n)]).to(device)
    start = time.perf_counter()
    for _ in range(5):
        pack.update(batch)
    _sync(device)
    warmup = time.perf_counter() - start
    rate = _median_rate(lambda: pack.update(batch), calls, repeats, device)
    pack.check_finite()
    extra: dict[str, Any] = {
        "size": size, "pack": n, "device": device.type, "seed_updates_per_second":
        round(n * rate, 2), "matmul_precision": matmul_precision,
        "cuda_graphs": pack._use_graphs, "compiled": compile, "warmup_seconds": round(warmup, 2),
        "state_mib": round(_state_mib(pack), 1), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        extra["peak_device_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        extra["gpu"] = torch.cuda.get_device_name(device)
        if size == "paper" and shape == "cube-double":
            key = (n, current_cuda_matmul())
            extra.update({f"h200_{k}": v for k, v in REFERENCE_H200.get(key, {}).items()})
            if key in TARGETS_H200:
                extra["target_seed_updates_per_second"] = TARGETS_H200[key]
    return Figure("pack_updates_per_second", shape, f"pack{n}+{matmul_precision}", rate,
                  "updates/s", extra)


def bench_pack_online_step(size: str, n: int, *, device: torch.device, compile: bool = True,
                           steps: int = 30, env_name: str = ONLINE_ENV) -> Figure:
    """One online step of a pack: a packed update, one batched exploring act for the n
    members' observations and n steps of a real OGBench environment (stepped one after
    another in this process), in ms, with each part's share."""
    import ogbench

    envs = [ogbench.make_env_and_datasets(env_name, env_only=True) for _ in range(n)]
    obs = np.stack([env.reset(seed=i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    obs_dim, action_dim = obs.shape[1], envs[0].action_space.shape[0]
    pack = _pack(size, n, device, compile, obs_dim, action_dim)
    batch = Batch.stack([synthetic_batch(obs_dim, action_dim, pack.config.batch_size, seed=i)
                         for i in range(n)]).to(device)
    parts = {"update": 0.0, "act": 0.0, "env": 0.0}

    def step(timed: bool) -> None:
        nonlocal obs
        t0 = time.perf_counter()
        pack.update(batch)
        _sync(device)
        t1 = time.perf_counter()
        actions = pack.act(torch.from_numpy(obs).view(n, 1, obs_dim)).view(n, action_dim)
        actions = actions.cpu().numpy()
        t2 = time.perf_counter()
        for i, env in enumerate(envs):
            ob, _, terminated, truncated, _ = env.step(actions[i])
            obs[i] = env.reset()[0] if terminated or truncated else ob
        t3 = time.perf_counter()
        if timed:
            parts["update"] += t1 - t0
            parts["act"] += t2 - t1
            parts["env"] += t3 - t2

    for _ in range(5):
        step(timed=False)
    for _ in range(steps):
        step(timed=True)
    for env in envs:
        env.close()
    total_ms = 1000 * sum(parts.values()) / steps
    return Figure("pack_online_step_ms", env_name, f"pack{n}", total_ms, "ms", {
        "size": size, "pack": n, "device": device.type,
        "seed_steps_per_second": round(n * 1000 / total_ms, 2),
        **{f"{k}_ms": round(1000 * v / steps, 3) for k, v in parts.items()},
        "envs_stepped": "sequentially, in the benchmark's process"})


def _single_process(shape: str, size: str, threads: int, seconds: float, start_at: float,
                    queue: Any) -> None:
    torch.set_num_threads(threads)
    obs_dim, action_dim = SHAPES[shape]
    pack = _pack(size, 1, torch.device("cpu"), True, obs_dim, action_dim)
    batch = Batch.stack([synthetic_batch(obs_dim, action_dim, pack.config.batch_size)])
    for _ in range(5):
        pack.update(batch)
    while time.time() < start_at:
        time.sleep(0.01)
    count, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        pack.update(batch)
        count += 1
    queue.put(count / (time.perf_counter() - begin))


def bench_separate_processes(shape: str, size: str, n: int, *, seconds: float = 20.0,
                             warmup_seconds: float = 60.0) -> Figure:
    """The same n seeds as n single-agent processes running side by side on this machine's
    cores (each with cores // n threads, at least 1): their summed updates/s."""
    cores = len(os.sched_getaffinity(0))
    threads = max(1, cores // n)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + warmup_seconds  # all compile first, then run together
    procs = [ctx.Process(target=_single_process,
                         args=(shape, size, threads, seconds, start_at, queue))
             for _ in range(n)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return Figure("separate_processes_seed_updates_per_second", shape, f"{n}x1", sum(rates),
                  "seed-updates/s", {"size": size, "pack": n, "device": "cpu",
                                     "threads_each": threads, "cores": cores,
                                     "per_process": [round(r, 2) for r in rates]})


def run_pack_benchmark(shape: str, packs: Sequence[int], *, sizes: Sequence[str] = ("paper",
                       "quick"), device: str = "auto", compile: bool = True, calls: int = 20,
                       repeats: int = 5, online: bool = True, versus_processes: bool = True,
                       tf32: bool = True) -> Iterator[Figure]:
    """Every pack figure: per size and pack size the packed update (fp32, and TF32 on CUDA),
    the online step, and on the CPU the ratio to separate processes."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {sorted(SHAPES)}")
    if not packs or any(n < 1 for n in packs):
        raise ValueError(f"pack sizes {list(packs)}: each must be >= 1")
    dev = resolve_device(device)
    for size in sizes:
        for n in packs:
            update = bench_pack_updates(shape, size, n, device=dev, compile=compile,
                                        calls=calls, repeats=repeats)
            yield update
            if dev.type == "cuda" and tf32:
                yield bench_pack_updates(shape, size, n, device=dev, matmul_precision="tf32",
                                         compile=compile, calls=calls, repeats=repeats)
                configure_cuda_matmul("fp32", dev)
            if online:
                yield bench_pack_online_step(size, n, device=dev, compile=compile)
            if dev.type == "cpu" and versus_processes and n > 1:
                separate = bench_separate_processes(shape, size, n)
                yield separate
                packed = update.extra["seed_updates_per_second"]
                yield Figure("pack_over_processes", shape, f"pack{n}", packed / separate.value,
                             "ratio", {"size": size, "pack": n, "device": "cpu",
                                       "pack_seed_updates_per_second": packed,
                                       "processes_seed_updates_per_second":
                                           round(separate.value, 2)})
