"""LPOSS / LPOSS+ propagation (methods/components/label_propagation.py) against formulas written here from the
official code (vladan-stojnic/LPOSS @e489a74 segmentation/evaluation/lposs_eval.py): dense matrices on small
graphs, CG's k-th iterate as the minimiser of the A-norm error over the Krylov space, and cv2's own Lab."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from methods.components.label_propagation import (
    check_graph_options,
    knn_graph,
    normalise_graph,
    patch_centres,
    pixel_graph,
    propagate,
    rgb_to_lab,
)


def rng(seed=0):
    return np.random.default_rng(seed)


def dense_knn_graph(f, centres, k, gamma, sigma, dist_pow):
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = f @ f.T
    n = len(f)
    w = np.zeros((n, n))
    for i in range(n):
        for j in np.argsort(-s[i])[:k]:
            d = np.hypot(*(centres[i] - centres[j]))
            w[i, j] = max(s[i, j], 0.0) ** gamma * np.exp(-sigma * d ** dist_pow)
    return w + w.T


def dense_normalised(w):
    w = w - np.diag(np.diag(w))
    s = w.sum(1)
    s[s == 0] = 1
    return w / np.sqrt(s)[:, None] / np.sqrt(s)[None, :]


def test_patch_centres_of_two_windows():
    c = patch_centres([(0, 0, 2, 2), (16, 32, 1, 2)], patch=16).numpy()
    np.testing.assert_array_equal(c, [[8, 8], [8, 24], [24, 8], [24, 24], [24, 40], [24, 56]])


@pytest.mark.parametrize("k, dist_pow", [(5, 1.0), (12, 2.0)])
def test_knn_graph_is_the_dense_formula(k, dist_pow):
    f = rng(1).normal(size=(12, 6))
    centres = patch_centres([(0, 0, 2, 3), (8, 16, 2, 3)], patch=8).numpy()
    w = knn_graph(torch.from_numpy(f), torch.from_numpy(centres), k=k, gamma=3.0, sigma=0.05,
                  dist_pow=dist_pow, chunk=5)
    np.testing.assert_allclose(w.toarray(), dense_knn_graph(f, centres, k, 3.0, 0.05, dist_pow), atol=1e-12)
    wn = normalise_graph(w).toarray()
    np.testing.assert_allclose(wn, dense_normalised(dense_knn_graph(f, centres, k, 3.0, 0.05, dist_pow)),
                               atol=1e-12)
    assert np.allclose(wn, wn.T) and np.all(np.diag(wn) == 0)


def krylov_iterate(a, b, m):
    """CG's m-th iterate from 0: argmin over span{b, Ab, ..., A^(m-1) b} of the A-norm error."""
    basis = np.stack([np.linalg.matrix_power(a, i) @ b for i in range(m)], 1)
    q, _ = np.linalg.qr(basis)
    return q @ np.linalg.solve(q.T @ a @ q, q.T @ b)


@pytest.mark.parametrize("solver", ["scipy", "torch"])
def test_propagation_is_conjugate_gradient_on_i_minus_alpha_w(solver):
    f = rng(2).normal(size=(30, 5))
    centres = patch_centres([(0, 0, 5, 6)], patch=16)
    wn = normalise_graph(knn_graph(torch.from_numpy(f), centres, k=8, gamma=3.0, sigma=0.01))
    seeds = rng(3).normal(size=(30, 4))
    a = np.eye(30) - 0.95 * wn.toarray()
    for iters in (1, 3):
        out = propagate(wn, torch.from_numpy(seeds).float(), alpha=0.95, iters=iters, tol=1e-12, solver=solver)
        expected = np.stack([krylov_iterate(a, seeds[:, c], iters) for c in range(4)], 1)
        np.testing.assert_allclose(out.numpy(), expected, atol=2e-5)
    converged = propagate(wn, torch.from_numpy(seeds).float(), alpha=0.95, iters=300, tol=1e-10, solver=solver)
    np.testing.assert_allclose(converged.numpy(), np.linalg.solve(a, seeds), atol=1e-4)


def test_torch_and_scipy_solvers_agree_at_the_published_settings():
    f = rng(4).normal(size=(200, 16))
    centres = patch_centres([(0, 0, 10, 10), (0, 112, 10, 10)], patch=16)
    wn = normalise_graph(knn_graph(torch.from_numpy(f), centres, k=40, gamma=3.0, sigma=0.01))
    seeds = torch.from_numpy(rng(5).normal(size=(200, 3))).float()
    seeds[:, 2] = 0  # an all-zero column stays zero (scipy returns b)
    a = propagate(wn, seeds, alpha=0.95, iters=10, solver="scipy")
    b = propagate(wn, seeds, alpha=0.95, iters=10, solver="torch")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(a[:, 2], torch.zeros(200))
    with pytest.raises(ConfigError, match="solver"):
        propagate(wn, seeds, alpha=0.95, iters=10, solver="cupy")


def test_lab_is_the_textbook_value_and_cv2s():
    # sRGB red, green, white, mid grey -> CIE Lab (D65), the standard conversion's published values
    rgb = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 0.5], [0.0, 0.0, 1.0, 0.5]]).double().view(3, 1, 4)
    expected = [[53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [100.0, 0.0, 0.0], [53.39, 0.0, 0.0]]
    np.testing.assert_allclose(rgb_to_lab(rgb)[:, 0].T.numpy(), expected, atol=0.05)
    rgb = rng(6).uniform(size=(4, 5, 3)).astype(np.float32)
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).double()).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab), atol=0.25)  # cv2 interpolates a table


def test_pixel_graph_is_the_dense_formula():
    rgb = torch.from_numpy(rng(7).uniform(size=(3, 4, 5)))
    radius, tau = 2, 0.1
    w = pixel_graph(rgb, radius=radius, tau=tau).toarray()
    lab = (rgb_to_lab(rgb) / torch.tensor([100.0, 128.0, 128.0]).view(3, 1, 1).double()).numpy()
    expected = np.zeros((20, 20))
    for i in range(20):
        for j in range(20):
            (yi, xi), (yj, xj) = divmod(i, 5), divmod(j, 5)
            if i != j and abs(yi - yj) <= radius and abs(xi - xj) <= radius:
                expected[i, j] = np.exp(-np.linalg.norm(lab[:, yi, xi] - lab[:, yj, xj]) / tau)
    np.testing.assert_allclose(w, expected, atol=1e-12)


@pytest.mark.parametrize("key, kwargs", [("k", {"k": 0}), ("alpha", {"alpha": 1.0}), ("tau", {"tau": 0}),
                                         ("gamma", {"gamma": -1}), ("iters", {"iters": 2.5})])
def test_graph_options_are_range_checked(key, kwargs):
    base = {"k": 400, "gamma": 3.0, "sigma": 0.01, "alpha": 0.95, "iters": 10}
    with pytest.raises(ConfigError, match=key):
        check_graph_options(**{**base, **kwargs})
