"""Tests for dmlviz.losses.softtriple: SoftTriple and NormalizedSoftmax against pytorch-metric-learning.

The peer is PML's ``SoftTripleLoss`` with ``SparseCentersRegularizer`` (weight = τ). One known,
deliberate difference: PML puts ``torch.finfo(dtype).tiny`` under the regularizer's square root
where the authors' code (and ours) puts 1e-5. For a pair of centers at squared distance
d² = 2 − 2⟨w_s, w_t⟩ the two square roots differ by about 1e-5 / (2·d); random centers are
nearly orthogonal (d ≈ √2), so each pair differs by ~3.5e-6 and the regularizer — a mean over
pairs, halved by the paper's divisor and scaled by τ ≤ 0.5 — differs by ~1e-6 at most, far below
the 1e-5 tolerance used here. (PML also clamps 2⟨w_s, w_t⟩ at 2, which never binds for
unit vectors up to rounding.)
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SoftTripleLoss
from pytorch_metric_learning.regularizers import SparseCentersRegularizer

from dmlviz.losses import LOSSES, NormalizedSoftmax, SoftTriple, build

C, D, B = 6, 16, 48

# (K, la, gamma, margin, tau): K=1 with and without τ (ours skips the regularizer at K=1),
# the paper's defaults at K=10, and a non-default setting.
CONFIGS = {
    "K1_tau0": (1, 20.0, 0.1, 0.01, 0.0),
    "K1_tau0.2": (1, 20.0, 0.1, 0.01, 0.2),
    "K10_paper": (10, 20.0, 0.1, 0.01, 0.2),
    "K3_custom": (3, 10.0, 0.05, 0.1, 0.5),
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# loss values: the brief's 1e-5 in both precisions; gradients: a little looser in float32
VALUE_ATOL = 1e-5
GRAD_TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-7, rtol=1e-6)}


def make_pml(K: int, la: float, gamma: float, margin: float, tau: float) -> SoftTripleLoss:
    """PML's SoftTripleLoss; with K=1 its regularizer cannot be built (it asserts K>1), so none."""
    if K > 1 and tau > 0:
        return SoftTripleLoss(
            C, D, centers_per_class=K, la=la, gamma=gamma, margin=margin,
            weight_regularizer=SparseCentersRegularizer(C, K), weight_reg_weight=tau,
        )
    return SoftTripleLoss(C, D, centers_per_class=K, la=la, gamma=gamma, margin=margin)


def make_pair(config: str, dtype: torch.dtype, seed: int = 0) -> tuple[SoftTriple, SoftTripleLoss]:
    """Ours and PML's with the same centers (PML's ``fc`` copied into our ``weight``)."""
    K, la, gamma, margin, tau = CONFIGS[config]
    torch.manual_seed(seed)
    theirs = make_pml(K, la, gamma, margin, tau).to(dtype)
    ours = SoftTriple(C, D, centers_per_class=K, la=la, gamma=gamma, tau=tau, margin=margin).to(dtype)
    with torch.no_grad():
        ours.weight.copy_(theirs.fc)
    return ours, theirs


def make_batch(dtype: torch.dtype, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g, dtype=dtype)
    y = torch.randint(0, C, (B,), generator=g)
    return x, y


def value_and_grads(loss: torch.nn.Module, centers: torch.nn.Parameter, x: torch.Tensor, y: torch.Tensor):
    x = x.clone().requires_grad_(True)
    value = loss(x, y)
    gx, gw = torch.autograd.grad(value, [x, centers])
    return value.detach(), gx, gw


# ------------------------------------------------------------------ against PML


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("config", CONFIGS)
def test_matches_pml_value_and_gradients(config: str, dtype: torch.dtype) -> None:
    ours, theirs = make_pair(config, dtype)
    x, y = make_batch(dtype)
    v_ours, gx_ours, gw_ours = value_and_grads(ours, ours.weight, x, y)
    v_pml, gx_pml, gw_pml = value_and_grads(theirs, theirs.fc, x, y)
    assert v_ours.dtype == dtype
    assert torch.isfinite(v_ours)
    assert abs(float(v_ours) - float(v_pml)) < VALUE_ATOL, (float(v_ours), float(v_pml))
    torch.testing.assert_close(gx_ours, gx_pml, **GRAD_TOL[dtype])
    torch.testing.assert_close(gw_ours, gw_pml, **GRAD_TOL[dtype])
    # gradients are not trivially zero: the comparison means something
    assert gx_ours.abs().max() > 1e-3 and gw_ours.abs().max() > 1e-3


@pytest.mark.parametrize("config", CONFIGS)
def test_terms_reported(config: str) -> None:
    ours, _ = make_pair(config, torch.float64)
    K, *_, tau = CONFIGS[config]
    x, y = make_batch(torch.float64)
    total = ours(x, y)
    if K > 1 and tau > 0:
        assert set(ours.terms) == {"classification", "regularizer"}
        assert math.isclose(sum(ours.terms.values()), total.item(), rel_tol=1e-12)
        assert math.isclose(ours.terms["regularizer"], tau * ours.regularizer().item(), rel_tol=1e-12)
    else:  # a single term: no breakdown, and no regularizer at K=1 even with τ > 0
        assert ours.terms == {}
        assert "regularizer" not in ours.compute(x, y)


def test_regularizer_matches_pml_regularizer() -> None:
    """The regularizer alone against SparseCentersRegularizer (float64; the eps differs, see the module doc)."""
    ours, theirs = make_pair("K10_paper", torch.float64)
    reg_pml = theirs.weight_regularizer(theirs.fc.t())
    assert abs(ours.regularizer().item() - reg_pml.item()) < 1e-5


# ------------------------------------------------------------ NormalizedSoftmax


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_normalized_softmax_is_softtriple_k1(dtype: torch.dtype) -> None:
    torch.manual_seed(3)
    theirs = SoftTripleLoss(C, D, centers_per_class=1).to(dtype)
    softmax = NormalizedSoftmax(C, D).to(dtype)
    k1 = SoftTriple(C, D, centers_per_class=1, tau=0.0).to(dtype)
    assert (softmax.centers_per_class, softmax.tau, softmax.la, softmax.margin) == (1, 0.0, 20.0, 0.01)
    assert softmax.name == "softmax" and LOSSES["softmax"] is NormalizedSoftmax
    with torch.no_grad():
        softmax.weight.copy_(theirs.fc)
        k1.weight.copy_(theirs.fc)
    x, y = make_batch(dtype, seed=4)
    v_sm, gx_sm, gw_sm = value_and_grads(softmax, softmax.weight, x, y)
    v_k1, gx_k1, gw_k1 = value_and_grads(k1, k1.weight, x, y)
    v_pml, gx_pml, gw_pml = value_and_grads(theirs, theirs.fc, x, y)
    assert float(v_sm) == float(v_k1)
    torch.testing.assert_close(gx_sm, gx_k1, atol=0, rtol=0)
    assert abs(float(v_sm) - float(v_pml)) < VALUE_ATOL
    torch.testing.assert_close(gx_sm, gx_pml, **GRAD_TOL[dtype])
    torch.testing.assert_close(gw_sm, gw_pml, **GRAD_TOL[dtype])


def test_normalized_softmax_non_default() -> None:
    torch.manual_seed(5)
    theirs = SoftTripleLoss(C, D, centers_per_class=1, la=10.0, margin=0.2).double()
    softmax = NormalizedSoftmax(C, D, la=10.0, margin=0.2).double()
    with torch.no_grad():
        softmax.weight.copy_(theirs.fc)
    x, y = make_batch(torch.float64, seed=6)
    assert abs(softmax(x, y).item() - theirs(x, y).item()) < 1e-10


# ------------------------------------------------------------------- centers()


def test_centers_layout_and_norm() -> None:
    K = 4
    torch.manual_seed(7)
    loss = SoftTriple(C, D, centers_per_class=K)
    with torch.no_grad():  # columns of very different norms: centers() must normalise each
        loss.weight.mul_(torch.logspace(-2, 2, C * K))
    centers = loss.centers()
    assert centers.shape == (C, K, D)
    assert not centers.requires_grad
    torch.testing.assert_close(centers.norm(dim=2), torch.ones(C, K))
    w = loss.weight.detach()
    for c in range(C):
        for k in range(K):
            col = w[:, c * K + k]
            torch.testing.assert_close(centers[c, k], col / col.norm())


def test_centers_k1_shape() -> None:
    assert NormalizedSoftmax(C, D).centers().shape == (C, 1, D)


# ----------------------------------------------------------------- regularizer


def regularizer_by_hand(weight: torch.Tensor, C: int, K: int) -> float:
    """METHODS.md: Σ over classes, pairs s<t of sqrt(2 + 1e-5 − 2⟨w_s, w_t⟩), divided by C·K·(K−1)."""
    w = weight.detach().double()
    total = 0.0
    for c in range(C):
        cols = [w[:, c * K + k] / w[:, c * K + k].norm() for k in range(K)]
        for s, t in itertools.combinations(range(K), 2):
            total += math.sqrt(2.0 + 1e-5 - 2.0 * float(cols[s] @ cols[t]))
    return total / (C * K * (K - 1))


@pytest.mark.parametrize("K", [2, 3, 10])
def test_regularizer_by_hand(K: int) -> None:
    torch.manual_seed(K)
    loss = SoftTriple(C, D, centers_per_class=K).double()
    assert math.isclose(loss.regularizer().item(), regularizer_by_hand(loss.weight, C, K), rel_tol=1e-12)
    # with an explicit (already normalised) w, the same value
    w = F.normalize(loss.weight, dim=0)
    assert math.isclose(loss.regularizer(w).item(), loss.regularizer().item(), rel_tol=1e-12)


def test_regularizer_coincident_centers_finite() -> None:
    """Two identical centers: the 1e-5 keeps value and gradient finite (sqrt(1e-5) per such pair)."""
    K = 2
    loss = SoftTriple(1, D, centers_per_class=K).double()
    with torch.no_grad():
        loss.weight[:, 1] = loss.weight[:, 0]
    reg = loss.regularizer()
    assert math.isclose(reg.item(), math.sqrt(1e-5) / (1 * K * (K - 1)), rel_tol=1e-6)
    reg.backward()
    assert torch.isfinite(loss.weight.grad).all()


def test_regularizer_pulls_centers_together() -> None:
    C_, K = 2, 3
    torch.manual_seed(8)
    loss = SoftTriple(C_, D, centers_per_class=K)
    opt = torch.optim.SGD([loss.weight], lr=0.5)

    def pair_dist() -> float:
        centers = loss.centers()
        return float((centers[0, 0] - centers[0, 1]).norm())

    def within_class_mean() -> float:
        centers = loss.centers()
        return float(sum(torch.pdist(centers[c]).mean() for c in range(C_)) / C_)

    d0, m0, r0 = pair_dist(), within_class_mean(), loss.regularizer().item()
    for _ in range(20):
        opt.zero_grad()
        loss.regularizer().backward()
        opt.step()
    d1, m1, r1 = pair_dist(), within_class_mean(), loss.regularizer().item()
    assert d1 < 0.9 * d0, (d0, d1)
    assert m1 < 0.9 * m0, (m0, m1)
    assert r1 < r0


# ----------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "params, name",
    [
        ({"centers_per_class": 0}, "centers_per_class"),
        ({"la": -1}, "la"),
        ({"la": 0}, "la"),
        ({"gamma": 0}, "gamma"),
        ({"tau": -0.1}, "tau"),
        ({"margin": -0.01}, "margin"),
    ],
)
def test_bad_parameters(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        SoftTriple(3, 4, **params)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        build("softtriple", num_classes=3, embedding_dim=4, **params)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        SoftTriple(0, 4)
    with pytest.raises(ValueError, match="embedding_dim"):
        SoftTriple(3, 0)


def test_build_softtriple() -> None:
    loss = build("softtriple", num_classes=3, embedding_dim=4, centers_per_class=2, la=10)
    assert isinstance(loss, SoftTriple)
    assert loss.weight.shape == (4, 6)
    assert (loss.la, loss.gamma, loss.tau, loss.margin) == (10.0, 0.1, 0.2, 0.01)
    assert isinstance(build("softmax", num_classes=3, embedding_dim=4), NormalizedSoftmax)


def test_unknown_loss_lists_known() -> None:
    with pytest.raises(ValueError) as info:
        build("softtripel", num_classes=3, embedding_dim=4)
    message = str(info.value)
    assert "softtripel" in message
    for known in ("softtriple", "softmax"):
        assert known in message


def test_unknown_parameter() -> None:
    with pytest.raises(TypeError, match="centres_per_class") as info:
        build("softtriple", num_classes=3, embedding_dim=4, centres_per_class=2)
    assert "centers_per_class" in str(info.value)  # the accepted names are listed
    with pytest.raises(TypeError, match="tau"):  # NormalizedSoftmax has no τ
        build("softmax", num_classes=3, embedding_dim=4, tau=0.2)


def test_bad_batch() -> None:
    loss = SoftTriple(3, 4, centers_per_class=2)
    with pytest.raises(ValueError, match="labels must lie"):
        loss(torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match="shape"):
        loss(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
