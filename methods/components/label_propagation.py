"""LPOSS / LPOSS+ label propagation (vladan-stojnic/LPOSS @e489a74, CVPR 2025), our own code from its facts.

LPOSS couples the sliding windows of one image: the patches of *all* windows are the nodes of one graph.
- `patch_centres`: a node's position in the (resized) image, window corner + p // 2 + i * p
  (`lposs_eval.get_lposs_laplacian`).
- `knn_graph`: exact k nearest neighbours by inner product of the L2-normalised features (faiss `knn_gpu` with
  `METRIC_INNER_PRODUCT` in the official code; a node is its own first neighbour there too); edge weight
  max(cos, 0)^gamma * exp(-sigma * dist^dist_pow), dist the Euclidean distance of the two centres in pixels; the
  graph is W + W^T (configs/lposs.yaml: k 400, gamma 3, sigma 0.01, dist_pow 1).
- `normalise_graph`: the diagonal removed, D^-1/2 W D^-1/2 with D the row sums (an empty row counts as 1).
- `propagate`: per class c, conjugate gradient on (I - alpha W_n) y_c = seeds_c from y = 0, `iters` iterations at
  most (alpha 0.95, 10 iterations, tolerance 1e-6 relative to |seeds_c|), one solve per class: "scipy" runs
  `scipy.sparse.linalg.cg` column by column on the CPU; "torch" runs the same iteration for all classes at once
  with a torch sparse matrix, on any device.
- LPOSS+ (`pixel_graph`): one node per pixel of the resized image, edges to the other pixels of its r x r
  neighbourhood (r = 13), weight exp(-|lab_i - lab_j| / tau) (tau 0.01) on CIE Lab scaled by (100, 128, 128)
  (`get_lposs_plus_laplacian`), then `normalise_graph` and `propagate` of the window-averaged LPOSS scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import cg as scipy_cg
from torch import Tensor

from harness.errors import ConfigError

SOLVERS = ("scipy", "torch")


def patch_centres(windows: Sequence[tuple[int, int, int, int]], patch: int) -> Tensor:
    """windows (y1, x1, gh, gw) in node order -> (N, 2) float64 pixel centres (y, x), row-major per window."""
    rows = []
    for y1, x1, gh, gw in windows:
        iy, ix = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        rows.append(torch.stack([y1 + patch // 2 + iy.flatten() * patch, x1 + patch // 2 + ix.flatten() * patch], 1))
    return torch.cat(rows).to(torch.float64)


def knn_graph(features: Tensor, centres: Tensor, *, k: int, gamma: float, sigma: float, dist_pow: float = 1.0,
              chunk: int = 4096) -> sp.csr_matrix:
    """features (N, C), centres (N, 2) -> the symmetric kNN graph W + W^T (scipy CSR, float64)."""
    n = features.shape[0]
    k = min(k, n)
    feats = torch.nn.functional.normalize(features.double(), dim=-1)
    centres = centres.to(feats.device, torch.float64)
    cols, weights = [], []
    for start in range(0, n, chunk):  # exact kNN, a block of rows at a time (N x N need not fit at once)
        sims, idx = (feats[start:start + chunk] @ feats.T).topk(k, dim=1)
        dist = (centres[start:start + chunk, None, :] - centres[idx]).norm(dim=-1)
        weights.append((sims.clamp(min=0) ** gamma * torch.exp(-sigma * dist ** dist_pow)).cpu())
        cols.append(idx.cpu())
    rows = np.repeat(np.arange(n), k)
    w = sp.csr_matrix((torch.cat(weights).flatten().numpy(), (rows, torch.cat(cols).flatten().numpy())),
                      shape=(n, n))
    return (w + w.T).tocsr()


def normalise_graph(w: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 (W - diag W) D^-1/2, D the row sums of W - diag W (rows summing to 0 count as 1)."""
    w = sp.csr_matrix(w, dtype=np.float64)
    w = (w - sp.diags(w.diagonal())).tocsr()
    s = np.asarray(w.sum(axis=1)).ravel()
    s[s == 0] = 1.0
    d = sp.diags(1.0 / np.sqrt(s))
    return (d @ w @ d).tocsr()


def propagate(w_norm: sp.spmatrix, seeds: Tensor, *, alpha: float, iters: int, tol: float = 1e-6,
              solver: str = "scipy", device: torch.device | str | None = None) -> Tensor:
    """Solve (I - alpha W_n) Y = seeds column by column with `iters` CG iterations at most: (N, K) float32."""
    if solver not in SOLVERS:
        raise ConfigError(f"option solver={solver!r} is not one of {', '.join(SOLVERS)}.")
    device = seeds.device if device is None else torch.device(device)
    n = w_norm.shape[0]
    if solver == "scipy":
        system = (sp.identity(n, format="csr") - alpha * w_norm).tocsr()
        y = seeds.detach().cpu().double().numpy()
        out = np.stack([scipy_cg(system, y[:, c], rtol=tol, atol=0.0, maxiter=iters)[0]
                        for c in range(y.shape[1])], axis=1) if y.shape[1] else y
        return torch.from_numpy(out).float().to(device)
    coo = sp.coo_matrix(w_norm)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    w_t = torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data).float(), (n, n),
                                  check_invariants=False).coalesce().to(device)
    return torch_cg(lambda x: x - alpha * torch.sparse.mm(w_t, x), seeds.float().to(device), iters=iters, tol=tol)


def torch_cg(matvec, b: Tensor, *, iters: int, tol: float) -> Tensor:
    """Conjugate gradient from x = 0 for each column of b (N, K) at once, each column with its own step sizes and
    stopping as scipy's `cg`: a column stops once |r| < tol * |b| (checked before each iteration)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = torch.zeros_like(b)
    atol = tol * b.norm(dim=0)
    rho_prev = torch.ones(b.shape[1], dtype=b.dtype, device=b.device)
    for i in range(iters):
        active = r.norm(dim=0) >= atol
        active &= b.norm(dim=0) > 0
        if not bool(active.any()):
            break
        rho = (r * r).sum(0)
        beta = rho / rho_prev if i > 0 else torch.zeros_like(rho)
        p = torch.where(active, r + beta * p, p)
        q = matvec(p)
        step = torch.where(active, rho / (p * q).sum(0).clamp_min(torch.finfo(b.dtype).tiny), torch.zeros_like(rho))
        x = x + step * p
        r = r - step * q
        rho_prev = torch.where(active, rho, rho_prev)
    return x


# ---------------------------------------------------------------------------------------------- LPOSS+


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """(3, H, W) sRGB in [0, 1] -> CIE Lab (D65): L in [0, 100], a and b about [-128, 127] (the sRGB
    linearisation, the sRGB -> XYZ matrix and the Lab companding, as kornia's `rgb_to_lab` used by LPOSS)."""
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,jhw->ihw", m, lin)
    xyz = xyz / torch.tensor([0.95047, 1.0, 1.08883], dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1 / 3), 7.787 * xyz + 4.0 / 29.0)
    return torch.stack([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def pixel_graph(rgb: Tensor, *, radius: int, tau: float) -> sp.csr_matrix:
    """(3, H, W) RGB in [0, 1] -> W over the H*W pixels: each pixel to the others of its (2 radius + 1)^2
    neighbourhood inside the image, weight exp(-|lab_i - lab_j| / tau), Lab scaled by (100, 128, 128)."""
    h, w = rgb.shape[-2:]
    lab = rgb_to_lab(rgb.double()) / torch.tensor([100.0, 128.0, 128.0], dtype=torch.float64).view(3, 1, 1)
    lab = lab.permute(1, 2, 0).reshape(-1, 3).cpu()
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()
    rows, cols, data = [], [], []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            ok = (yy + dy >= 0) & (yy + dy < h) & (xx + dx >= 0) & (xx + dx < w)
            src = torch.nonzero(ok).flatten()
            dst = (yy[src] + dy) * w + xx[src] + dx
            rows.append(src)
            cols.append(dst)
            data.append(torch.exp(-(lab[src] - lab[dst]).norm(dim=-1) / tau))
    return sp.csr_matrix((torch.cat(data).numpy(), (torch.cat(rows).numpy(), torch.cat(cols).numpy())),
                         shape=(h * w, h * w))


def check_graph_options(*, k: int, gamma: float, sigma: float, alpha: float, iters: int, radius: int = 6,
                        tau: float = 0.01) -> None:
    """ConfigError naming the key for a value outside its range."""
    for name, value in (("k", k), ("iters", iters), ("radius", radius)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"option {name} must be an integer >= 1, got {value!r}.")
    for name, value in (("gamma", gamma), ("sigma", sigma), ("tau", tau)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (name == "tau" and value == 0):
            raise ConfigError(f"option {name} must be a number {'> 0' if name == 'tau' else '>= 0'}, got {value!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha < 1:
        raise ConfigError(f"option alpha must be in [0, 1) (I - alpha W_n must stay positive definite), "
                          f"got {alpha!r}.")
