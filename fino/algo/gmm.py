"""Per-state Gaussian-mixture entropy estimates: a batched torch EM mirroring scikit-learn."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_KMEANS_MAX_ITER = 300  # scikit-learn KMeans defaults
_KMEANS_TOL = 1e-4


@dataclass(frozen=True)
class GaussianMixtureFit:
    """Batched full-covariance mixture: weights [S, C], means [S, C, d], covariances [S, C, d, d]."""

    weights: Tensor
    means: Tensor
    covariances: Tensor
    converged: Tensor  # [S] bool, per-state EM convergence
    n_iter: int  # EM iterations run (the slowest state's count)


def mixture_entropy(weights: Tensor, covariances: Tensor) -> Tensor:
    """-sum_k w_k log w_k + sum_k w_k H(N(0, Sigma_k)) for weights [..., C], covariances [..., C, d, d]."""
    d = covariances.shape[-1]
    chol = torch.linalg.cholesky(covariances)
    logdet = 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    gaussian = 0.5 * (d * math.log(2.0 * math.pi * math.e) + logdet)
    return -torch.special.xlogy(weights, weights).sum(-1) + (weights * gaussian).sum(-1)


def _sq_dists(x: Tensor, sq_norms: Tensor, centers: Tensor) -> Tensor:
    """Squared distances [S, N, K] from x [S, N, d] (sq_norms [S, N]) to centers [S, K, d]."""
    cross = torch.bmm(x, centers.mT)
    return (sq_norms.unsqueeze(-1) - 2.0 * cross + centers.square().sum(-1).unsqueeze(1)).clamp_(min=0)


def _kmeans_plusplus(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """Greedy k-means++ seeding as in scikit-learn: returns centers [S, k, d]."""
    s, n, _ = x.shape
    n_trials = 2 + int(math.log(k))
    rows = torch.arange(s, device=x.device)
    first = torch.randint(n, (s,), generator=generator, device=x.device)
    centers = [x[rows, first]]
    closest = (x - centers[0].unsqueeze(1)).square().sum(-1)  # [S, N]
    for _ in range(1, k):
        cumsum = closest.cumsum(-1)
        u = torch.rand(s, n_trials, generator=generator, device=x.device, dtype=x.dtype)
        cand = torch.searchsorted(cumsum, u * cumsum[:, -1:]).clamp_(max=n - 1)  # [S, T]
        cand_x = x[rows.unsqueeze(-1), cand]  # [S, T, d]
        dist = (x.unsqueeze(1) - cand_x.unsqueeze(2)).square().sum(-1)  # [S, T, N]
        dist = torch.minimum(dist, closest.unsqueeze(1))
        best = dist.sum(-1).argmin(-1)  # [S]
        closest = dist[rows, best]
        centers.append(cand_x[rows, best])
    return torch.stack(centers, 1)


def _kmeans_labels(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """scikit-learn KMeans(n_init=1) labels [S, N]: k-means++ seeding, then Lloyd iterations."""
    s, n, _ = x.shape
    sq_norms = x.square().sum(-1)
    tol = x.var(1, unbiased=False).mean(-1) * _KMEANS_TOL  # [S]
    centers = _kmeans_plusplus(x, k, generator)
    active = torch.ones(s, dtype=torch.bool, device=x.device)
    labels_old = torch.full((s, n), -1, dtype=torch.long, device=x.device)
    for _ in range(_KMEANS_MAX_ITER):
        dist = _sq_dists(x, sq_norms, centers)
        min_dist, labels = dist.min(-1)
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)  # [S, N, k]
        sums = onehot.mT @ x  # [S, k, d]
        counts = onehot.sum(1)  # [S, k]
        empty = counts == 0
        if bool(empty.any()):  # relocate empty clusters to the farthest points (as scikit-learn)
            far = min_dist.topk(k, dim=-1).indices  # [S, k]
            pick = far.gather(1, (empty.cumsum(-1) - 1).clamp_(min=0))  # [S, k]
            moved = x.gather(1, pick.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # [S, k, d]
            old = labels.gather(1, pick)  # [S, k]
            w = empty.to(x.dtype)
            sums = sums - torch.zeros_like(sums).scatter_add_(
                1, old.unsqueeze(-1).expand_as(moved), moved * w.unsqueeze(-1)
            )
            counts = counts - torch.zeros_like(counts).scatter_add_(1, old, w)
            sums = torch.where(empty.unsqueeze(-1), moved, sums)
            counts = torch.where(empty, 1.0, counts)
        new_centers = sums / counts.unsqueeze(-1)
        shift = (new_centers - centers).square().sum((-1, -2))
        centers = torch.where(active.view(s, 1, 1), new_centers, centers)
        done = (labels == labels_old).all(-1) | (shift <= tol)
        active = active & ~done
        labels_old = labels
        if not bool(active.any()):
            break
    return _sq_dists(x, sq_norms, centers).argmin(-1)


def _m_step(x: Tensor, resp: Tensor, reg_covar: float) -> tuple[Tensor, Tensor, Tensor]:
    """Weights [S, C], means [S, C, d], covariances [S, C, d, d] from responsibilities [S, N, C]."""
    s, n, d = x.shape
    c = resp.shape[-1]
    nk = resp.sum(1) + 10 * torch.finfo(resp.dtype).eps  # [S, C]
    means = (resp.mT @ x) / nk.unsqueeze(-1)
    weighted = (resp.unsqueeze(-1) * x.unsqueeze(2)).reshape(s, n, c * d)
    second = (x.mT @ weighted).view(s, d, c, d).transpose(1, 2)  # [S, C, d, d]
    cov = second / nk.view(s, c, 1, 1) - means.unsqueeze(-1) * means.unsqueeze(-2)
    cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    return nk / nk.sum(-1, keepdim=True), means, cov


def _e_step(x: Tensor, weights: Tensor, means: Tensor, cov: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample log-likelihood [S, N] and responsibilities [S, N, C]."""
    s, n, d = x.shape
    c = weights.shape[-1]
    chol = torch.linalg.cholesky(cov)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    prec_chol = torch.linalg.solve_triangular(chol, eye, upper=False).mT  # [S, C, d, d]
    y = (x @ prec_chol.transpose(1, 2).reshape(s, d, c * d)).view(s, n, c, d)
    y = y - (means.unsqueeze(-2) @ prec_chol).view(s, 1, c, d)
    log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # [S, C]
    log_prob = -0.5 * (y.square().sum(-1) + d * math.log(2 * math.pi)) - log_det.unsqueeze(1)
    log_prob = log_prob + weights.log().unsqueeze(1)
    log_norm = torch.logsumexp(log_prob, -1)
    return log_norm, (log_prob - log_norm.unsqueeze(-1)).exp()


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
    """Fit one full-covariance GMM per state of samples [S, N, d] (scikit-learn semantics, kmeans init)."""
    center = samples.mean(1, keepdim=True)
    x = samples - center  # per-state centering: better conditioned second moments
    labels = _kmeans_labels(x, n_components, generator)
    resp = torch.nn.functional.one_hot(labels, n_components).to(x.dtype)
    weights, means, cov = _m_step(x, resp, reg_covar)
    out_w, out_m, out_c = weights.clone(), means.clone(), cov.clone()
    converged = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    idx = torch.arange(x.shape[0], device=x.device)  # states still iterating
    prev = torch.full_like(idx, -math.inf, dtype=x.dtype)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        log_norm, resp = _e_step(x, weights, means, cov)
        weights, means, cov = _m_step(x, resp, reg_covar)
        lower = log_norm.mean(-1)
        done = (lower - prev).abs() < tol
        prev = lower
        if bool(done.any()):
            out_w[idx[done]], out_m[idx[done]], out_c[idx[done]] = weights[done], means[done], cov[done]
            converged[idx[done]] = True
            keep = ~done
            idx, x, prev = idx[keep], x[keep], prev[keep]
            weights, means, cov = weights[keep], means[keep], cov[keep]
            if idx.numel() == 0:
                break
    out_w[idx], out_m[idx], out_c[idx] = weights, means, cov
    return GaussianMixtureFit(out_w, out_m + center, out_c, converged, n_iter)


def gmm_entropy_batched(samples: Tensor, n_components: int = 3, **kw) -> Tensor:
    """Mixture-entropy estimate [S] from a batched GMM fit of samples [S, N, d]."""
    fit = fit_gmm_batched(samples, n_components, **kw)
    return mixture_entropy(fit.weights, fit.covariances)


def gmm_entropy_sklearn(samples: np.ndarray | Tensor, n_components: int = 3, seed: int = 0) -> np.ndarray:
    """Reference: one scikit-learn GaussianMixture per state, then mixture_entropy; returns [S]."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    if isinstance(samples, Tensor):
        samples = samples.detach().cpu().numpy()
    data = np.asarray(samples, dtype=np.float64)
    weights, covs = [], []
    with threadpool_limits(1):
        for x in data:
            gm = GaussianMixture(n_components, covariance_type="full", random_state=seed).fit(x)
            weights.append(gm.weights_)
            covs.append(gm.covariances_)
    return mixture_entropy(torch.from_numpy(np.stack(weights)), torch.from_numpy(np.stack(covs))).numpy()
