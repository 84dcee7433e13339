"""Per-state Gaussian-mixture entropy estimates: a batched torch EM mirroring scikit-learn.

All states are fitted at once; states leave the batch as soon as they converge, as each of
scikit-learn's per-state fits would stop. Samples are held transposed with a row of ones,
xt1 = [x - mean; 1] of shape [S, d + 1, N], and per-component quantities as [S, C, N], so the
batched matmuls have long rows (several times faster on CPU than [S, N, C]) and means and counts
come out of one matmul. Sample-sized work runs in the input dtype; the small per-component linear
algebra (covariances, Cholesky, triangular solves, log-determinants) runs in float64: a float32
Cholesky is unreliable when eigenvalues are ~reg_covar (clipped action dimensions, few points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

_KMEANS_MAX_ITER = 300  # scikit-learn KMeans defaults
_KMEANS_TOL = 1e-4


@dataclass(frozen=True)
class GaussianMixtureFit:
    """Per-state mixtures: weights [S, C], means [S, C, d], covariances [S, C, d, d] (float64)."""

    weights: Tensor
    means: Tensor
    covariances: Tensor
    converged: Tensor  # [S] bool: the lower bound changed by < tol within max_iter
    n_iter: int  # EM iterations run by the slowest state


def mixture_entropy(weights: Tensor, covariances: Tensor) -> Tensor:
    """-sum_k w_k log w_k + sum_k w_k 0.5 log((2 pi e)^d |Sigma_k|); weights [..., C] -> [...]."""
    d = covariances.shape[-1]
    chol = torch.linalg.cholesky(covariances)
    logdet = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    gaussian = 0.5 * (d * math.log(2.0 * math.pi * math.e) + logdet)
    return -torch.special.xlogy(weights, weights).sum(-1) + (weights * gaussian).sum(-1)


def _sq_dists(xt1: Tensor, sq_norms: Tensor, centers: Tensor) -> Tensor:
    """Squared distances [S, K, N] from centers [S, K, d] to the samples (norms [S, N])."""
    base = centers.square().sum(-1, keepdim=True) + sq_norms.unsqueeze(1)
    return torch.baddbmm(base, centers, xt1[:, :-1], alpha=-2.0).clamp_(min=0)


def _nearest(xt1: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """Per sample: squared distance to the nearest center minus |x|^2 [S, N], its first index."""
    k = centers.shape[1]
    score = torch.baddbmm(centers.square().sum(-1, keepdim=True), centers, xt1[:, :-1], alpha=-2.0)
    low = score.amin(1, keepdim=True)  # min/argmin over dim 1 are slow on CPU; amin is not
    rank = torch.arange(k, 0, -1, device=score.device).view(1, k, 1)
    return low.squeeze(1), k - ((score == low) * rank).amax(1)


def _one_hot(labels: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """Labels [S, N] -> indicators [S, k, N]."""
    return (labels.unsqueeze(1) == torch.arange(k, device=labels.device).view(1, k, 1)).to(dtype)


def _compact(keep: Tensor, *tensors: Tensor) -> list[Tensor]:
    """The rows of each tensor where keep is true."""
    return [t[keep] for t in tensors]


def _kmeans_plusplus(xt1: Tensor, sq_norms: Tensor, k: int, gen: torch.Generator | None) -> Tensor:
    """Greedy k-means++ seeding as scikit-learn's (2 + int(log k) trials per center): [S, k, d]."""
    s, _, n = xt1.shape
    x = xt1[:, :-1].mT
    n_trials = 2 + int(math.log(k))
    rows = torch.arange(s, device=x.device).unsqueeze(-1)
    dev = x.device if gen is None else gen.device  # draw on the generator's device
    first = torch.randint(n, (s, 1), generator=gen, device=dev).to(x.device)
    centers = [x[rows, first]]  # each [S, 1, d]
    closest = _sq_dists(xt1, sq_norms, centers[0])  # [S, 1, N]
    for _ in range(1, k):
        cumsum = closest.squeeze(1).cumsum(-1)
        u = torch.rand(s, n_trials, generator=gen, device=dev, dtype=torch.float64).to(x)
        cand = torch.searchsorted(cumsum, u * cumsum[:, -1:]).clamp_(max=n - 1)  # [S, T]
        cand_x = x[rows, cand]  # [S, T, d]
        dist = torch.minimum(_sq_dists(xt1, sq_norms, cand_x), closest)  # [S, T, N]
        best = dist.sum(-1).argmin(-1, keepdim=True)  # the trial that most lowers the inertia
        closest = dist[rows, best]
        centers.append(cand_x[rows, best])
    return torch.cat(centers, 1)


def _lloyd_step(xt1: Tensor, sq_norms: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """Assign labels [S, N] and recompute centers [S, k, d]; empty clusters get far points."""
    k, d = centers.shape[1:]
    score, labels = _nearest(xt1, centers)
    moments = _one_hot(labels, k, xt1.dtype) @ xt1.mT  # [S, k, d + 1]: coordinate sums, counts
    sums, counts = moments[..., :d], moments[..., d]
    empty = counts == 0
    if bool(empty.any()):  # as scikit-learn: the j-th empty cluster takes the j-th farthest
        far = (score + sq_norms).topk(k, dim=-1).indices  # point, which leaves its cluster
        pick = far.gather(1, (empty.cumsum(-1) - 1).clamp_(min=0))
        moved = xt1[:, :d].gather(2, pick.unsqueeze(1).expand(-1, d, -1)).mT  # [S, k, d]
        old = labels.gather(1, pick)
        w = empty.to(xt1.dtype)
        sums = sums - torch.zeros_like(sums).scatter_add_(
            1, old.unsqueeze(-1).expand_as(moved), moved * w.unsqueeze(-1)
        )
        counts = counts - torch.zeros_like(counts).scatter_add_(1, old, w)
        sums = torch.where(empty.unsqueeze(-1), moved, sums)
        counts = torch.where(empty, 1.0, counts)
    # A cluster whose only point moved keeps its remaining sum (~0) as its center, as
    # scikit-learn's `_average_centers` does; never 0/0 (a NaN center breaks the labels).
    return labels, sums / torch.where(counts > 0, counts, 1.0).unsqueeze(-1)


def _kmeans_labels(xt1: Tensor, k: int, gen: torch.Generator | None) -> Tensor:
    """Labels [S, N] of scikit-learn's KMeans(n_init=1): k-means++, then per-state Lloyd runs."""
    s, d1, n = xt1.shape
    sq_norms = xt1[:, :-1].square().sum(1)  # [S, N]
    centers = _kmeans_plusplus(xt1, sq_norms, k, gen)
    out = centers.clone()
    # scikit-learn's tolerance: 1e-4 times the mean per-dimension variance (samples are centred)
    tol = sq_norms.mean(-1) * (_KMEANS_TOL / (d1 - 1))
    idx = torch.arange(s, device=xt1.device)  # batch row -> state; finished states are dropped
    labels_old = torch.full((s, n), -1, dtype=torch.long, device=xt1.device)
    xb, sqb = xt1, sq_norms
    for _ in range(_KMEANS_MAX_ITER):
        labels, new = _lloyd_step(xb, sqb, centers)
        done = (labels == labels_old).all(-1) | ((new - centers).square().sum((1, 2)) <= tol)
        centers, labels_old = new, labels
        if bool(done.any()):
            out[idx[done]] = centers[done]
            idx, xb, sqb, tol, centers, labels_old = _compact(
                ~done, idx, xb, sqb, tol, centers, labels_old
            )
            if idx.numel() == 0:
                break
    out[idx] = centers
    return _nearest(xt1, out)[1]


def _m_step(xt1: Tensor, resp: Tensor, reg_covar: float) -> tuple[Tensor, Tensor, Tensor]:
    """Weights [S, C], means [S, C, d], covariances [S, C, d, d] (float64) from resp [S, C, N]."""
    d = xt1.shape[1] - 1
    moments = resp @ xt1.mT  # [S, C, d + 1]: weighted coordinate sums, total responsibilities
    nk = moments[..., d] + 10 * torch.finfo(resp.dtype).eps  # as scikit-learn: no empty component
    means = moments[..., :d] / nk.unsqueeze(-1)
    scale = (resp / nk.unsqueeze(-1)).sqrt_().unsqueeze(2)
    weighted = (xt1[:, None, :d] - means.unsqueeze(-1)).mul_(scale)  # [S, C, d, N], centred
    cov = (weighted @ weighted.mT).double()
    cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    nk = nk.double()
    return nk / nk.sum(-1, keepdim=True), means.double(), cov


def _e_step(xt1: Tensor, weights: Tensor, means: Tensor, cov: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample log-likelihood [S, N] and responsibilities [S, C, N]."""
    s, d1, n = xt1.shape
    c, d = means.shape[1:]
    chol = torch.linalg.cholesky(cov)
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device).expand(s, c, d, d)
    rhs = torch.cat([eye, -means.unsqueeze(-1)], -1)
    proj = torch.linalg.solve_triangular(chol, rhs, upper=False)  # L^-1 [I, -mu]
    y = proj.to(xt1.dtype).reshape(s, c * d, d1) @ xt1  # L^-1 (x - mu), [S, C * d, N]
    log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # [S, C]
    offset = (weights.log() - log_det - 0.5 * d * math.log(2 * math.pi)).to(xt1.dtype)
    log_prob = offset.unsqueeze(-1) - 0.5 * y.view(s, c, d, n).square_().sum(2)  # [S, C, N]
    peak = log_prob.amax(1, keepdim=True)
    # one exp serves both logsumexp and the responsibilities; the clamp avoids exp's slow
    # underflow path on CPU and only changes responsibilities below 1e-34
    prob = (log_prob - peak).clamp_(min=-80.0).exp_()
    norm = prob.sum(1, keepdim=True)
    return (peak + norm.log()).squeeze(1), prob.div_(norm)


@torch.inference_mode()
def fit_gmm_batched(
    samples: Tensor,
    n_components: int = 3,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    generator: torch.Generator | None = None,
) -> GaussianMixtureFit:
    """One full-covariance GMM per state of samples [S, N, d], fitted as scikit-learn does."""
    s, n, _ = samples.shape
    center = samples.mean(1, keepdim=True)
    ones = torch.ones(s, 1, n, dtype=samples.dtype, device=samples.device)
    xt1 = torch.cat([(samples - center).mT, ones], 1)  # [S, d + 1, N]
    labels = _kmeans_labels(xt1, n_components, generator)
    weights, means, cov = _m_step(xt1, _one_hot(labels, n_components, xt1.dtype), reg_covar)
    out_w, out_m, out_c = weights.clone(), means.clone(), cov.clone()
    converged = torch.zeros(s, dtype=torch.bool, device=xt1.device)
    idx = torch.arange(s, device=xt1.device)  # batch row -> state; converged states are dropped
    lower = torch.full((s,), -math.inf, dtype=xt1.dtype, device=xt1.device)
    n_iter = 0
    while n_iter < max_iter and idx.numel() > 0:
        n_iter += 1
        log_norm, resp = _e_step(xt1, weights, means, cov)
        weights, means, cov = _m_step(xt1, resp, reg_covar)
        lower, prev = log_norm.mean(-1), lower  # the bound of the parameters before this M-step
        done = (lower - prev).abs() < tol
        if bool(done.any()):
            rows = idx[done]
            out_w[rows], out_m[rows], out_c[rows] = weights[done], means[done], cov[done]
            converged[rows] = True
            idx, xt1, lower, weights, means, cov = _compact(
                ~done, idx, xt1, lower, weights, means, cov
            )
    out_w[idx], out_m[idx], out_c[idx] = weights, means, cov
    return GaussianMixtureFit(out_w, out_m + center.double(), out_c, converged, n_iter)


def gmm_entropy_batched(samples: Tensor, n_components: int = 3, **kw: Any) -> Tensor:
    """Mixture-entropy estimates [S] (input dtype) of samples [S, N, d]; kw: fit_gmm_batched's."""
    fit = fit_gmm_batched(samples, n_components, **kw)
    return mixture_entropy(fit.weights, fit.covariances).to(samples.dtype)


def gmm_entropy_sklearn(
    samples: np.ndarray | Tensor, n_components: int = 3, seed: int = 0
) -> np.ndarray:
    """Reference [S]: one scikit-learn GaussianMixture per state (float64), mixture_entropy."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    if isinstance(samples, Tensor):
        samples = samples.detach().cpu().numpy()
    weights, covs = [], []
    with threadpool_limits(1):  # thread wake-ups would dominate these tiny fits
        for x in np.asarray(samples, dtype=np.float64):
            gm = GaussianMixture(n_components, covariance_type="full", random_state=seed).fit(x)
            weights.append(gm.weights_)
            covs.append(gm.covariances_)
    w, cov = torch.from_numpy(np.stack(weights)), torch.from_numpy(np.stack(covs))
    return mixture_entropy(w, cov).numpy()
