"""Batched torch GMM entropy vs the scikit-learn loop, at FINO's size (S=256, N=200, C=3).

Data: per state, a mixture of 3 correlated Gaussians with different scales (0.15, 0.3, 0.6) around
random means in [-0.5, 0.5]^d, clipped to [-1, 1] like policy actions (~10% of coordinates sit on
the bound; mean entropies are well away from 0, so relative differences mean something).
Prints one JSON line per figure: fit time of each estimator (batched: median of repeats after a
warm-up; sklearn: one run), the speed-up, the mean entropies (batched: averaged over the
repeats' k-means++ seeds) and their relative difference.

    python benchmarks/bench_gmm.py
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch

from fino.algo.gmm import gmm_entropy_batched, gmm_entropy_sklearn


def clipped_mixture(s: int, n: int, d: int, seed: int) -> torch.Tensor:
    """[s, n, d] float32 samples: 3 Gaussians per state with scales 0.15/0.3/0.6, clipped."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(s, 3, d, generator=g) - 0.5
    shape = torch.randn(s, 3, d, d, generator=g) / math.sqrt(d) + torch.eye(d)
    shape = shape * torch.tensor([0.15, 0.3, 0.6]).view(1, 3, 1, 1)
    comp = torch.randint(3, (s, n), generator=g)
    rows = torch.arange(s).unsqueeze(-1)
    z = torch.randn(s, n, d, 1, generator=g)
    return (means[rows, comp] + (shape[rows, comp] @ z).squeeze(-1)).clamp(-1, 1)


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=256)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    s, n, c = args.states, args.samples, args.components
    for d in (5, 21):
        x = clipped_mixture(s, n, d, seed=d)
        gmm_entropy_batched(x, c)  # warm-up
        times, means = [], []
        for r in range(args.repeats):
            start = time.perf_counter()
            batched = gmm_entropy_batched(x, c, generator=torch.Generator().manual_seed(r))
            times.append(time.perf_counter() - start)
            means.append(batched.double().mean().item())
        t_batched = statistics.median(times)
        start = time.perf_counter()
        reference = gmm_entropy_sklearn(x, c)
        t_sklearn = time.perf_counter() - start
        common = dict(d=d, S=s, N=n, C=c, threads=torch.get_num_threads())
        emit(figure="gmm_fit_seconds", impl="batched", value=round(t_batched, 4), **common)
        emit(figure="gmm_fit_seconds", impl="sklearn", value=round(t_sklearn, 4), **common)
        emit(figure="gmm_speedup", value=round(t_sklearn / t_batched, 2), **common)
        mean_b, mean_r = statistics.fmean(means), float(np.mean(reference))
        emit(figure="gmm_mean_entropy", impl="batched", value=round(mean_b, 4), **common)
        emit(figure="gmm_mean_entropy", impl="sklearn", value=round(mean_r, 4), **common)
        emit(figure="gmm_mean_entropy_rel_diff", value=round(abs(mean_b / mean_r - 1), 5), **common)


if __name__ == "__main__":
    main()
