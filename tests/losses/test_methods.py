import math

import numpy as np
"""The methods of the seeds against their papers' formulas, re-typed here, or against pytorch-metric-learning."""

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.distances import DotProductSimilarity

from dmlviz.losses import build
from dmlviz.losses.sampling import distance_weighted_triplets

C, D = 6, 12


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(24, D, dtype=torch.float64), torch.arange(C).repeat_interleave(4)


def _double(loss):
    return loss.double()


def test_proxynca_classic_leaves_the_positive_out(batch):
    x, y = batch
    loss = _double(build("proxynca", num_classes=C, embedding_dim=D, variant="classic", softmax_scale=3.0))
    p = F.normalize(loss.loss.proxies, dim=1)
    total = 0.0
    for xi, yi in zip(F.normalize(x, dim=1), y):
        d = 3.0 * ((xi - p) ** 2).sum(dim=1)
        others = torch.cat([d[:yi], d[yi + 1 :]])
        total = total - torch.log(torch.exp(-d[yi]) / torch.exp(-others).sum())
    assert float(loss(x, y)) == pytest.approx(float(total / len(y)), rel=1e-10)


def test_proxyncapp_is_nca_over_all_proxies_at_scale_3(batch):
    x, y = batch
    loss = _double(build("proxyncapp", num_classes=C, embedding_dim=D))
    assert loss.loss.proxies.std() < 0.2  # randn / 8
    xs, ps = 3 * F.normalize(x, dim=1), 3 * F.normalize(loss.loss.proxies, dim=1)
    d = torch.cdist(xs, ps) ** 2
    expected = F.cross_entropy(-d, y)  # ProxyNCA_prob: softmax over all proxies, positive included
    assert float(loss(x, y)) == pytest.approx(float(expected), rel=1e-8)


def test_npair_is_sohns_formula_on_unnormalised_embeddings(batch):
    x, _ = batch
    x, y = x[:12], torch.arange(6).repeat_interleave(2)
    loss = build("npair", num_classes=C, embedding_dim=D, l2_reg=0.02)
    anchors, positives = x[0::2], x[1::2]
    logits = anchors @ positives.T
    sohn = torch.log1p((torch.exp(logits - logits.diag()[:, None]).sum(dim=1) - 1)).mean()
    expected = sohn + 0.02 * x.pow(2).sum(dim=1).mean()
    assert float(loss(x, y)) == pytest.approx(float(expected), rel=1e-6)
    assert loss.preferred_m_per_class == 2 and loss.embedding_scale == "raw"


def test_margin_loss_on_distance_weighted_triplets_is_the_papers(batch):
    x, y = batch
    loss = _double(build("margin", num_classes=C, embedding_dim=D))
    with torch.no_grad():
        loss.loss.beta.copy_(torch.linspace(1.0, 1.4, C))
    torch.manual_seed(7)
    value = loss(x, y)
    torch.manual_seed(7)
    a, p, n = distance_weighted_triplets(x, y)
    u = F.normalize(x, dim=1)
    beta = loss.loss.beta[y[a]]
    pos = F.relu(0.2 + (u[a] - u[p]).norm(dim=1) - beta)
    neg = F.relu(0.2 - ((u[a] - u[n]).norm(dim=1) - beta))
    expected = (pos.sum() + neg.sum()) / ((pos > 0).sum() + (neg > 0).sum())
    assert float(value) == pytest.approx(float(expected), rel=1e-8)
    assert loss.snapshot_arrays()["margin_beta"].shape == (C,)


def test_contrastive_balance_weighs_the_negative_term(batch):
    x, y = batch
    plain = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)(x, y)
    assert float(build("contrastive", num_classes=C, embedding_dim=D)(x, y)) == pytest.approx(float(plain), rel=1e-10)
    loss = build("contrastive", num_classes=C, embedding_dim=D, balance=3.0)
    value = loss(x, y)
    only_pos = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1e-12)(x, y)  # negatives never violate
    assert loss.terms["positive"] == pytest.approx(float(only_pos), rel=1e-8)
    assert float(value) == pytest.approx(float(only_pos) + 3.0 * (float(plain) - float(only_pos)), rel=1e-8)


def test_ntxent_with_balance_one_is_pml_and_balance_weighs_the_entropy(batch):
    x, y = batch
    ours = build("ntxent", num_classes=C, embedding_dim=D, temperature=0.1)
    assert float(ours(x, y)) == pytest.approx(float(pml_losses.NTXentLoss(temperature=0.1)(x, y)), rel=1e-8)
    weighted = build("ntxent", num_classes=C, embedding_dim=D, temperature=0.1, balance=0.5)
    weighted(x, y)
    assert weighted.terms["entropy"] == pytest.approx(0.5 * ours.terms["entropy"], rel=1e-10)


def _smoothap_reference(x, y, tau=0.01):
    """The authors' Smooth-AP, re-typed query by query (the query counts as its own first positive)."""
    u = F.normalize(x, dim=1)
    s = u @ u.T
    aps = []
    for i in range(len(y)):
        members = (y == y[i]).nonzero().flatten()
        ap = 0.0
        for j in members:
            sig = torch.sigmoid((s[i] - s[i, j]) / tau)
            sig[j] = 0
            ap = ap + (1 + sig[members].sum()) / (1 + sig.sum())
        aps.append(ap / len(members))
    return 1 - torch.stack(aps).mean()


def test_smoothap_is_the_authors_formula_and_pmls_where_pml_is_right(batch):
    x, y = batch  # 6 classes x 4
    loss = build("smoothap", num_classes=C, embedding_dim=D)
    assert float(loss(x, y)) == pytest.approx(float(_smoothap_reference(x, y)), rel=1e-10)
    order = torch.randperm(len(y))
    assert float(loss(x[order], y[order])) == pytest.approx(float(loss(x, y)), rel=1e-10)
    uneven = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3])  # classes of unequal size
    assert float(loss(x[:12], uneven)) == pytest.approx(float(_smoothap_reference(x[:12], uneven)), rel=1e-10)
    square_x, square_y = x[:16].float(), torch.arange(4).repeat_interleave(4)  # 4 x 4: PML groups right
    pml = pml_losses.SmoothAPLoss(temperature=0.01)(square_x, square_y)
    assert float(loss(square_x, square_y)) == pytest.approx(float(pml), rel=1e-5)
    assert abs(float(pml_losses.SmoothAPLoss(temperature=0.01)(x.float(), y)) - float(loss(x, y))) > 1e-3  # PML's bug


def test_crossentropy_is_the_authors_kl_to_a_smoothed_target(batch):
    x, y = batch
    loss = _double(build("crossentropy", num_classes=C, embedding_dim=D))
    assert float(loss.classifier.weight.abs().sum()) == 0 and float(loss.classifier.bias.abs().sum()) == 0
    # zero classifier: uniform softmax; KL from the target t to uniform = Σ t log t + log C
    eps = 0.1
    t = torch.tensor([1 - eps] + [eps / (C - 1)] * (C - 1), dtype=torch.float64)
    assert float(loss(x, y)) == pytest.approx(float((t * t.log()).sum() + math.log(C)), rel=1e-10)
    with torch.no_grad():
        loss.classifier.weight.normal_()
        loss.classifier.bias.normal_()
    log_p = F.log_softmax(x @ loss.classifier.weight.T + loss.classifier.bias, dim=1)
    target = torch.full((len(y), C), eps / (C - 1), dtype=torch.float64)
    target[torch.arange(len(y)), y] = 1 - eps
    expected = (target * (target.log() - log_p)).sum(dim=1).mean()
    assert float(loss(x, y)) == pytest.approx(float(expected), rel=1e-10)
    assert loss.centers().shape == (C, 1, D)  # directions once the rows are non-zero


def _cbml_reference(feats, labels, pos_a=0.5, pos_b=0.5, neg_a=1.0, neg_b=0.01, margin=0.1, weight=1.0, h=0.1):
    """The authors' per-anchor loop, re-typed (adaptive negatives, "log" type)."""
    sim = feats @ feats.T
    total = []
    for i in range(len(labels)):
        pos_ = sim[i][labels == labels[i]]
        pos_ = pos_[pos_ < 1 - 1e-5]
        neg_ = sim[i][labels != labels[i]]
        if len(neg_) < 1 or len(pos_) < 1:
            continue
        mean = (1 - h) * sim[i].mean() + h * (pos_.min() + neg_.max()) / 2
        sigma = ((neg_ - mean) ** 2).sum()
        pos = pos_[pos_ - margin < neg_.max()]
        neg = neg_[neg_ + margin > pos_.min()]
        if len(neg) < 1 or len(pos) < 1:
            continue
        fp = 1 + torch.exp(-(pos - pos_a) / pos_b).sum()
        fn = 1 + torch.exp((neg - neg_a) / neg_b).sum()
        total.append(torch.log(fp) + torch.log(fn) + weight * sigma)
    return sum(total) / len(labels)


def test_cbml_equals_the_authors_loop_in_value_and_gradient(batch):
    x, y = batch
    for scale in (0.3, 1.0, 3.0):  # different minings
        xa = (x * scale).clone().requires_grad_(True)
        xb = xa.detach().clone().requires_grad_(True)
        ours = build("cbml", num_classes=C, embedding_dim=D)(xa, y)
        ref = _cbml_reference(F.normalize(xb, dim=1), y)
        assert float(ours) == pytest.approx(float(ref), rel=1e-10)
        ours.backward()
        ref.backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-8, atol=1e-12)


def _proxy_synthesis_reference(x_l2, p_l2, target, rate, mu):
    """The authors' proxy_synthesis with a given λ, re-typed."""
    inputs = [x_l2, rate * x_l2 + (1 - rate) * torch.roll(x_l2, 1, dims=0)]
    proxies = [p_l2, rate * p_l2[target] + (1 - rate) * torch.roll(p_l2[target], 1, dims=0)]
    targets = [target, torch.arange(len(p_l2), len(p_l2) + len(x_l2), device=x_l2.device)]
    e, p = int(len(x_l2) * (1 + mu)), int(len(p_l2) + len(x_l2) * mu)
    return (F.normalize(torch.cat(inputs)[:e], dim=1), F.normalize(torch.cat(proxies)[:p], dim=1), torch.cat(targets)[:e])


@pytest.mark.parametrize("base", ["softmax", "proxynca"])
def test_proxy_synthesis_is_the_authors_on_an_interleaved_batch(batch, base, monkeypatch):
    from dmlviz.losses.proxy_synthesis import interleave

    x, y = batch
    loss = _double(build("proxysynthesis", num_classes=C, embedding_dim=D, base=base, ps_mu=0.5))
    monkeypatch.setattr(loss, "draw_rate", lambda device: 0.3)
    order = interleave(y)
    assert bool((y[order][1:] != y[order][:-1]).all())  # adjacent labels differ, as the authors need
    xs, ps, ys = _proxy_synthesis_reference(F.normalize(x[order], dim=1), F.normalize(loss.proxies, dim=1), y[order], 0.3, 0.5)
    scale = 23.0 if base == "softmax" else 10.0
    logits = scale * xs @ ps.T if base == "softmax" else -scale * torch.cdist(xs, ps) ** 2
    expected = F.cross_entropy(logits, ys)
    assert float(loss(x, y)) == pytest.approx(float(expected), rel=1e-10)
    assert len(ys) == 24 + 12 and ps.shape[0] == C + 12
    plain = _double(build("proxysynthesis", num_classes=C, embedding_dim=D, ps_mu=0.0))
    with torch.no_grad():
        plain.proxies.copy_(loss.proxies)
    no_synthesis = F.cross_entropy(23.0 * F.normalize(x, dim=1) @ F.normalize(plain.proxies, dim=1).T, y)
    assert float(plain(x, y)) == pytest.approx(float(no_synthesis), rel=1e-10)


def _supap_reference(s, labels, temp=0.01, tau=100.0, offset=1.44, margin=0.05, start=0.5):
    """The authors' step_rank + SmoothRankAP.quick_forward, re-typed."""
    b = len(labels)
    target = (labels[:, None] == labels[None, :]).to(s.dtype)
    tens = s.unsqueeze(1) - s.unsqueeze(1).permute(0, 2, 1)
    sup = (target.unsqueeze(-1) == target.unsqueeze(-2)) & target.unsqueeze(1).bool()
    pos_mask = tens > 0
    out = tens.clone()

    def sig(t):
        return 1.0 / (1.0 + (-t / temp).clamp(-50, 50).exp())

    margin_mask = tens > margin
    out[~sup & pos_mask & ~margin_mask] = start + sig(tens[~sup & pos_mask & ~margin_mask])
    out[~sup & pos_mask & margin_mask] = tau * tens[~sup & pos_mask & margin_mask] + offset
    out[~sup & ~pos_mask] = sig(tens[~sup & ~pos_mask])
    out[sup] = torch.heaviside(tens[sup].detach(), values=torch.tensor(1.0, dtype=s.dtype, device=s.device))  # a step: no gradient
    mask = 1.0 - torch.eye(b, dtype=s.dtype, device=s.device).unsqueeze(0)
    all_rk = (out * mask).sum(dim=-1) + 1
    pos_rk = ((out * (target - torch.eye(b, dtype=s.dtype, device=s.device))).sum(dim=-1) + target) * target
    ap = (pos_rk / all_rk).sum(1) * (1 / target.sum(1))
    return 1 - ap.mean()


def test_roadmap_supap_is_the_authors_and_adds_pmls_calibration(batch):
    x, y = batch
    for scale in (0.2, 1.0):
        xa = (x * scale).clone().requires_grad_(True)
        xb = xa.detach().clone().requires_grad_(True)
        loss = build("roadmap", num_classes=C, embedding_dim=D)
        value = loss(xa, y)
        u = F.normalize(xb, dim=1)
        calibration = pml_losses.ContrastiveLoss(pos_margin=0.9, neg_margin=0.6, distance=DotProductSimilarity())(xb, y)
        expected = _supap_reference(u @ u.T, y) + calibration
        assert float(value) == pytest.approx(float(expected), rel=1e-10)
        value.backward()
        expected.backward()
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-7, atol=1e-10)
    assert set(loss.terms) == {"supap", "calibration"}


def test_multi_proxy_anchor_with_one_proxy_is_proxy_anchor_and_draws_k_centers(batch):
    x, y = batch
    one = _double(build("multiproxyanchor", num_classes=C, embedding_dim=D, proxies_per_class=1))
    pml_pa = pml_losses.ProxyAnchorLoss(C, D, margin=0.1, alpha=32).double()
    with torch.no_grad():
        pml_pa.proxies.copy_(one.proxies)
    assert float(one(x, y)) == pytest.approx(float(pml_pa(x, y)), rel=1e-8)
    three = build("multiproxyanchor", num_classes=C, embedding_dim=D)
    assert three.centers().shape == (C, 3, D)
    s = three.class_similarity(x.float())
    sims = (F.normalize(x.float(), dim=1) @ F.normalize(three.proxies, dim=1).T).view(len(x), C, 3)
    assert bool((s <= sims.max(dim=2).values + 1e-6).all()) and bool((s >= sims.min(dim=2).values - 1e-6).all())


def test_ensemble_is_the_authors_wel_over_successive_batches():
    torch.manual_seed(3)
    loss = build("ensemble", num_classes=C, embedding_dim=D, losses="triplet,proxynca", prior="2,1,3")
    m, floor = 3, 1 / 12
    c = torch.sqrt(torch.tensor([2.0, 1.0, 3.0]) / 6 - floor)
    torch.testing.assert_close(loss.coeffs.detach(), c)
    running, seen = [0.0] * m, 0
    for step in range(3):
        x, y = torch.randn(24, D), torch.arange(C).repeat_interleave(4)
        torch.manual_seed(10 + step)
        value = loss(x, y)
        # the authors' forward, re-typed: classifier with smoothed labels, then the metric losses
        target = torch.full((24, C), 0.15 / (C - 1)).scatter_(1, y[:, None], 0.85)
        l0 = torch.sum(-target * torch.log(F.softmax(loss.classifier(x), dim=1)), -1).mean()
        torch.manual_seed(10 + step)
        ls = [l0, loss.components[0](x, y), loss.components[1](x, y)]
        for i in range(m):
            running[i] = (float(ls[i]) + seen * running[i]) / (seen + 1)
        seen += 1
        mean = sum(running) / m
        coeff2 = loss.coeffs.detach() ** 2
        expected = sum((coeff2[i] + floor) * (mean / running[i]) * ls[i] for i in range(m))
        expected = expected + 100 * 100.0 * (coeff2.sum() + m * floor - 1) ** 2
        assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert loss.centers().shape == (C, 1, D) and loss.needs_pairs
    with pytest.raises(ValueError, match="prior needs 3 positive numbers"):
        build("ensemble", num_classes=C, embedding_dim=D, losses="triplet,proxynca", prior="1,1")
    with pytest.raises(ValueError, match="losses must name registered losses"):
        build("ensemble", num_classes=C, embedding_dim=D, losses="triplet,nope")


def _soprc_reference(feats, targets, v, prior, ns, temp=(0.1, 0.001), beta=0.1, num_v=100):
    """The authors' SOPRC forward (contiguous blocks), re-typed, with the last row of each class writing v."""
    b = len(targets)
    nc = b // ns
    mask = torch.block_diag(*([torch.ones(ns, ns, device=feats.device) + torch.eye(ns, device=feats.device)] * nc))
    sim = feats @ feats.t()
    sim_pos = torch.sort(sim.view(-1)[mask.view(-1).eq(1)].view(b, ns - 1, 1), 1)[0]
    sim_neg = sim.view(-1)[mask.view(-1).eq(0)].view(b, 1, (nc - 1) * ns)
    x = torch.clamp(sim_pos - sim_neg, max=temp[0])
    loss_pn = torch.where(x >= 0, (x / temp[0] - 1) ** 2, -2 * x / temp[0] + 1).mean(-1)
    with torch.no_grad():
        n = math.ceil(num_v / (ns - 1))
        alpha = (torch.arange(n, device=feats.device) / n).view(1, 1, -1)
        sc = sim_pos.clone()
        left = torch.cat([torch.clamp(2 * sc[:, 0] - sc[:, 1], min=-1).unsqueeze(1), sc[:, :-1]], dim=1)
        right = torch.cat([sc[:, 1:], torch.clamp(2 * sc[:, -1] - sc[:, -2], max=1).unsqueeze(1)], dim=1)
        new = (beta / 2 * (((sc - left) * alpha + left) + ((right - sc) * alpha + sc))).view(b, -1)[:, :num_v]
        for row in range(b):  # in order: the last row of a class is the one that stays
            if row % ns == ns - 1:
                v[targets[row]] = (1 - beta) * v[targets[row]] + new[row]
        pv = 2 / (1 + torch.exp(torch.clamp(sim_pos - v[targets].view(b, 1, -1), max=0) / temp[1])) - 1
        pv = (1 + pv.sum(-1)) / (pv.shape[-1] + 1)
    p = prior[targets].unsqueeze(1)
    loss = (1 - p) / p * loss_pn / pv
    return (loss / (1 + loss)).mean()


def test_soprc_is_the_authors_over_successive_batches():
    torch.manual_seed(5)
    loss = build("soprc", num_classes=C, embedding_dim=D, variance_weight=0.0)
    counts = np.array([10, 20, 30, 40, 50, 60])
    loss.set_class_counts(counts)
    torch.testing.assert_close(loss.prior, torch.tensor(counts * 0.01 / 60, dtype=torch.float32))
    v = (torch.arange(100) / 100).repeat(C, 1)
    for _ in range(3):
        x, y = torch.randn(24, D), torch.arange(C).repeat_interleave(4)
        ours = loss(x, y)
        expected = _soprc_reference(F.normalize(x, dim=1), y, v, loss.prior, ns=4)
        assert float(ours) == pytest.approx(float(expected), rel=1e-5)
        torch.testing.assert_close(loss.v, v)
    with pytest.raises(ValueError, match="the same number"):
        loss(torch.randn(7, D), torch.tensor([0, 0, 0, 1, 1, 1, 1]))


def test_soprc_variance_term_penalises_the_tails_of_the_score_distributions():
    torch.manual_seed(6)
    x, y = torch.randn(24, D), torch.arange(C).repeat_interleave(4)
    loss = build("soprc", num_classes=C, embedding_dim=D)
    loss(x, y)
    u = F.normalize(x, dim=1)
    s = u @ u.T
    same = (y[:, None] == y[None, :]) & ~torch.eye(24, dtype=torch.bool)
    sp, sn = s[same], s[y[:, None] != y[None, :]]
    gp, gn = sp.mean() - sp, sn - sn.mean()
    expected = (gp[gp > 0] ** 2).mean() + 5 * (gn[gn > 0] ** 2).mean()
    assert loss.terms["variance"] == pytest.approx(float(expected), rel=1e-5)
