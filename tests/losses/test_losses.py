import pytest
import torch

from dmlviz.losses import LOSSES, DMLLoss, build

C, D = 5, 16


def _batch(seed=0, b=40):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, D, generator=g, requires_grad=True), torch.arange(b) % C


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_trains_and_reports_centers(name):
    torch.manual_seed(0)
    loss = build(name, num_classes=C, embedding_dim=D)
    assert isinstance(loss, DMLLoss) and loss.name == name
    x, y = _batch()
    value = loss(x, y)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    centers = loss.centers()
    if name == "crossentropy":  # zero-initialised classifier: no direction before a step
        assert centers is None
        torch.optim.SGD(loss.parameters(), lr=0.1).step()
        centers = loss.centers()
    if centers is None:
        assert loss.needs_pairs and loss.center_parameters() == []
    else:
        assert centers.shape[0] == C and centers.shape[2] == D
        torch.testing.assert_close(centers.norm(dim=2), torch.ones(centers.shape[:2]))
        assert any(p.grad is not None for p in loss.center_parameters())


@pytest.mark.parametrize("name", sorted(n for n, cls in LOSSES.items() if cls.needs_pairs))
def test_pair_losses_refuse_a_batch_of_one_class(name):
    loss = build(name, num_classes=C, embedding_dim=D)
    with pytest.raises(ValueError, match="one class.*m_per_class"):
        loss(torch.randn(8, D), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="no two samples of the same class"):
        loss(torch.randn(4, D), torch.arange(4))


def test_softtriple_k_below_one_and_bad_labels():
    with pytest.raises(ValueError, match="centers_per_class must be an integer >= 1, got 0"):
        build("softtriple", num_classes=C, embedding_dim=D, centers_per_class=0)
    loss = build("softtriple", num_classes=C, embedding_dim=D, centers_per_class=2)
    with pytest.raises(ValueError, match="labels must lie in 0..4"):
        loss(torch.randn(3, D), torch.tensor([0, 1, 7]))
    with pytest.raises(ValueError, match="embeddings must have shape \\(batch, 16\\)"):
        loss(torch.randn(3, 4), torch.tensor([0, 1, 2]))


def test_softtriple_reports_its_terms():
    loss = build("softtriple", num_classes=C, embedding_dim=D, centers_per_class=3, tau=0.2)
    x, y = _batch()
    value = loss(x, y)
    assert set(loss.terms) == {"classification", "regularizer"}
    assert abs(sum(loss.terms.values()) - value.item()) < 1e-5


def test_triplet_mining_option():
    loss = build("triplet", num_classes=C, embedding_dim=D, mining="hard")
    x, y = _batch()
    assert torch.isfinite(loss(x, y))
    with pytest.raises(ValueError, match="mining must be one of"):
        build("triplet", num_classes=C, embedding_dim=D, mining="easy")


#: A valid value other than the default for every constructor parameter of every registered loss.
OTHER_VALUES = {
    "softtriple": dict(centers_per_class=3, la=10.0, gamma=0.2, tau=0.1, margin=0.02),
    "softmax": dict(la=10.0, margin=0.02),
    "triplet": dict(margin=0.3, mining="distance", scale="mean_distance", cutoff=0.4, nonzero_loss_cutoff=1.3),
    "multisimilarity": dict(alpha=1.0, beta=40.0, base=0.4, epsilon=0.2),
    "circle": dict(m=0.3, gamma=64.0),
    "proxynca": dict(softmax_scale=2.0, variant="classic"),
    "proxyncapp": dict(softmax_scale=4.0),
    "npair": dict(l2_reg=0.002),
    "margin": dict(margin=0.1, beta=1.0, nu=0.01, cutoff=0.4, nonzero_loss_cutoff=1.3),
    "contrastive": dict(pos_margin=0.1, neg_margin=0.8, balance=2.0),
    "ntxent": dict(temperature=0.1, balance=0.5),
    "smoothap": dict(temperature=0.05),
    "crossentropy": dict(smoothing=0.2),
    "roadmap": dict(temperature=0.02, rho=50.0, delta=0.1, offset=1.0, start=0.0, calibration_weight=0.5, pos_margin=0.8, neg_margin=0.5),
    "multiproxyanchor": dict(proxies_per_class=2, gamma=0.2, margin=0.2, alpha=16.0),
    "ensemble": dict(losses="softmax,proxyanchor", prior="1,1,1", eta=10.0, smoothing=0.1),
    "soprc": dict(temp_pn=0.2, temp_pp=0.01, beta=0.2, prior_mul=0.1, num_v=50, variance_weight=2.0),
    "proxysynthesis": dict(base="proxynca", scale=8.0, ps_alpha=0.5, ps_mu=0.5),
    "cbml": dict(pos_a=0.4, pos_b=0.4, neg_a=0.9, neg_b=0.02, margin=0.2, weight=0.5, hyper_weight=0.2, kind="sqrt", weight_p=0.3, weight_n=0.3),
    "proxyanchor": dict(margin=0.2, alpha=16.0),
    "nivmf": dict(concentration=10.0, temperature=0.01, samples=20, guidance=0.0, init_norm_multiplier=1.0, warm_start=False, normalizer="exact"),
    "ccp": dict(proxies_per_class=4, pool_size=7, pos_margin=0.1, neg_margin=0.6, batch_weight=0.2, proxy_weight=0.5, proximal=1e-3,
                patience=2, seed=3),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_records_every_constructor_parameter(name):
    import inspect

    signature = inspect.signature(LOSSES[name].__init__).parameters
    defaults = {k: p.default for k, p in signature.items() if k not in ("self", "num_classes", "embedding_dim")}
    assert build(name, num_classes=C, embedding_dim=D).hparams == defaults
    assert set(OTHER_VALUES[name]) == set(defaults)
    loss = build(name, num_classes=C, embedding_dim=D, **OTHER_VALUES[name])
    assert loss.hparams == OTHER_VALUES[name]
    assert build(name, num_classes=C, embedding_dim=D, **loss.hparams).hparams == loss.hparams  # rebuildable
