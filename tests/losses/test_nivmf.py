"""EL-nivMF (experimental): the vMF sampler and normaliser against theory (SciPy's Bessel functions), the expected
likelihood and the loss against the authors' code re-typed, and training with its warm start."""

import math

import numpy as np
import pytest
import scipy.special as sp
import torch
import torch.nn.functional as F

import dmlviz
from dmlviz.losses import build
from dmlviz.losses.nivmf import AUTHORS_FITS, expected_likelihood, log_bessel_i, log_vmf_normalizer, sample_vmf


@pytest.mark.parametrize("dim, tol", [(2, 1e-12), (3, 1e-12), (4, 1e-12), (5, 5e-3), (8, 1e-3), (32, 1e-5), (128, 1e-7), (512, 1e-8)])
def test_the_exact_normaliser_is_scipys_bessel_function(dim, tol):
    kappa = torch.tensor([0.5, 1.0, 5.0, 20.0, 80.0, 300.0], dtype=torch.float64)
    order = dim / 2 - 1
    with np.errstate(divide="ignore"):
        want = np.log(sp.ive(order, kappa.numpy())) + kappa.numpy()  # underflows (-inf) for high orders at small kappa
    ok = np.isfinite(want)
    np.testing.assert_allclose(log_bessel_i(order, kappa).numpy()[ok], want[ok], atol=tol, rtol=0)
    c = log_vmf_normalizer(kappa, dim).numpy()
    np.testing.assert_allclose(c[ok], (order * np.log(kappa.numpy()) - dim / 2 * np.log(2 * np.pi) - want)[ok], atol=tol, rtol=0)


def test_the_authors_fits_are_used_as_written():
    kappa = torch.tensor([1.0, 10.0])
    a, b, c = AUTHORS_FITS[512]
    torch.testing.assert_close(log_vmf_normalizer(kappa, 512, "authors"), a + b * kappa + c * kappa**2)
    exact = log_vmf_normalizer(torch.tensor([1.0, 30.0], dtype=torch.float64), 512)  # the fit's slope in kappa² is the true one
    fit = log_vmf_normalizer(torch.tensor([1.0, 30.0], dtype=torch.float64), 512, "authors")
    assert (exact[1] - exact[0]).item() == pytest.approx((fit[1] - fit[0]).item(), rel=0.02)


@pytest.mark.parametrize("dim", [2, 3, 16, 128])
def test_vmf_draws_are_unit_and_have_the_mean_resultant_length_of_theory(dim):
    torch.manual_seed(0)
    mu = F.normalize(torch.randn(3, dim, dtype=torch.float64), dim=1)
    kappa = torch.tensor([0.5, 5.0, 50.0], dtype=torch.float64)
    x = sample_vmf(mu, kappa, 20000)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(20000, 3, dtype=torch.float64))
    along = (x * mu).sum(-1).mean(0).numpy()
    np.testing.assert_allclose(along, sp.ive(dim / 2, kappa.numpy()) / sp.ive(dim / 2 - 1, kappa.numpy()), atol=0.012)
    across = x - (x * mu).sum(-1, keepdim=True) * mu  # the rest is symmetric around the mean direction
    assert float(across.mean(0).norm(dim=-1).max()) < 0.03


def test_draws_are_differentiable_in_direction_and_concentration():
    torch.manual_seed(1)
    z = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    x = sample_vmf(F.normalize(z, dim=1), z.norm(dim=1), 5)
    (g,) = torch.autograd.grad((x[..., 0] ** 2).sum(), z)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def authors_log_ppk(sample_rows, mu2, kappa2, temp, dim):
    """utilities/misc.log_ppk_vmf_vec for one image, re-typed after its samples are drawn: samples [S, D]; approx_log_cp
    replaced by the normaliser under test (the formula around it is the authors')."""
    m = mu2 * kappa2
    n = m.norm(dim=1)
    cos = torch.stack([F.cosine_similarity(sample_rows[s][None], m) for s in range(len(sample_rows))])  # [S, C]
    logl = log_vmf_normalizer(n, dim)[None] + n[None] * cos + (torch.log(kappa2).sum(1) - torch.log(n))[None]
    return torch.logsumexp(logl / temp - math.log(len(sample_rows)), dim=0)


def test_expected_likelihood_is_the_authors_log_ppk():
    torch.manual_seed(2)
    samples = F.normalize(torch.randn(5, 3, 8, dtype=torch.float64), dim=-1)
    directions, kappa = torch.randn(4, 8, dtype=torch.float64), torch.rand(4, 8, dtype=torch.float64) * 5 + 0.1
    temp = torch.tensor(0.05, dtype=torch.float64)
    got = expected_likelihood(samples, directions, kappa, temp, "exact")
    want = torch.stack([authors_log_ppk(samples[:, i], F.normalize(directions, dim=1), kappa, temp, 8) for i in range(3)])
    torch.testing.assert_close(got, want)


def authors_oproxy(batch, labels, proxies, alpha=32.0, delta=0.1):
    """criteria/proxyvmf_panc.oproxy (mode "anchor"), re-typed with loops."""
    P = F.normalize(proxies, dim=1)
    pos_cols, neg_cols = [], []
    for j in range(len(labels)):  # one column per batch sample: its class's proxy, against the samples of that class
        rows = [i for i in range(len(labels)) if labels[i] == labels[j]]
        pos_cols.append(torch.log1p(sum(torch.exp(-alpha * (batch[i] @ P[labels[j]] - delta)) for i in rows)))
    for c in range(len(P)):
        rows = [i for i in range(len(labels)) if labels[i] != c]
        neg_cols.append(torch.log1p(sum(torch.exp(alpha * (batch[i] @ P[c] - delta)) for i in rows)) if rows else batch.sum() * 0)
    return torch.stack(pos_cols).mean() + torch.stack(neg_cols).mean()


def test_the_loss_is_nca_over_expected_likelihoods_plus_the_authors_guidance():
    torch.manual_seed(3)
    loss = build("nivmf", num_classes=5, embedding_dim=8, guidance=3.0, temperature=0.05).double()
    z = (torch.randn(12, 8, dtype=torch.float64) * 4).requires_grad_()
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 1])
    torch.manual_seed(9)
    value = loss(z, y)
    torch.manual_seed(9)  # the same draws
    x = sample_vmf(F.normalize(z, dim=1), z.norm(dim=1), 5)
    sim = expected_likelihood(x, loss.directions, loss.kappa.clamp(min=0.1), loss.temperature, "exact")
    nca = torch.stack([-sim[i, y[i]] + torch.logsumexp(sim[i], 0) for i in range(12)]).mean()
    want = nca + 3.0 * authors_oproxy(F.normalize(z, dim=1), y, loss.directions)
    torch.testing.assert_close(value, want)
    assert set(loss.terms) == {"likelihood", "guidance"}
    assert torch.isfinite(torch.autograd.grad(value, z)[0]).all()


def test_training_warm_starts_at_class_means_scales_the_head_once_and_resumes_exactly(small_synthetic, tmp_path, interrupted_then_resumed):
    args = dict(model="linear", loss="nivmf", batch_size=32, embedding_dim=8, split="samples", progress=False, epochs=3)
    run = dmlviz.train(small_synthetic, out=tmp_path / "a", **args)
    first, zero = run.snapshot(1), run.snapshot(0)
    assert run.config["loss_params"]["normalizer"] == "auto" and set(run.config["loss_params"]) >= {"concentration", "guidance"}
    assert np.median(first.norms) > 10 * np.median(zero.norms)  # the head was multiplied by 30 before epoch 1, once
    assert np.median(run.snapshot(3).norms) < 100 * np.median(zero.norms)
    arrays = run.arrays(1, "nivmf_concentration", "nivmf_anisotropy", "nivmf_temperature")
    assert arrays["nivmf_concentration"].shape == (4,) and np.all(arrays["nivmf_anisotropy"] >= 1)
    assert np.isfinite(run.metrics["loss"].to_numpy()[1:]).all()

    resumed = interrupted_then_resumed(small_synthetic, 3, out=tmp_path / "b", **args)  # from the checkpoint of epoch 2
    np.testing.assert_array_equal(resumed.snapshot(3).embeddings, run.snapshot(3).embeddings)  # no second warm start or scaling


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="normalizer='authors' exists for embedding_dim 128 and 512 only"):
        build("nivmf", num_classes=3, embedding_dim=8, normalizer="authors")
    with pytest.raises(ValueError, match="normalizer must be one of"):
        build("nivmf", num_classes=3, embedding_dim=8, normalizer="fit")
