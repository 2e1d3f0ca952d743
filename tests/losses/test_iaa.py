"""IAA: class statistics as the authors blend them, the paper's neighbour correction, its synthetic samples, the
anchors-only-real pair loss, and training with it on its schedule."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dmlviz
from dmlviz.losses import build
from dmlviz.losses.iaa import IntraClassAugmentation


def authors_update(mean, cov, amount, z, y, momentum):
    """The authors' Estimate_Covariance.update_diag, re-typed per class in float64."""
    mean, cov, amount = mean.clone(), cov.clone(), amount.clone()
    for c in range(len(mean)):
        rows = z[y == c]
        n = len(rows)
        if n == 0:
            continue
        ave = rows.mean(0)
        var = ((rows - ave) ** 2).mean(0)
        w = max(n / (n + amount[c].item()), 1 - momentum)
        cov[c] = cov[c] * (1 - w) + var * w + w * (1 - w) * (mean[c] - ave) ** 2
        mean[c] = mean[c] * (1 - w) + ave * w
        amount[c] += n
    return mean, cov, amount


def paper_correction(mean, cov, counts, beta, gamma, k, tau):
    """Paper Sec. III-C, re-typed with loops: neighbours by ||mu_c^2 - mu_i^2||, weights n_i exp(-Dm^2/2 - Dcv^2/2)."""
    C = len(mean)
    usable = [i for i in range(C) if counts[i] > 1]
    g = sum(counts[i] * cov[i] for i in usable) / sum(counts[i] for i in usable)
    out = cov.clone()
    for c in range(C):
        others = [i for i in usable if i != c]
        dm = torch.tensor([torch.linalg.norm(mean[c] ** 2 - mean[i] ** 2).item() for i in others], dtype=torch.float64)
        dv = torch.tensor([torch.linalg.norm(cov[c] - cov[i]).item() for i in others], dtype=torch.float64)
        dm_n, dv_n = (dm - dm.min()) / (dm.max() - dm.min()), (dv - dv.min()) / (dv.max() - dv.min())
        near = torch.argsort(dm)[:k]
        w = torch.tensor([counts[others[j]] for j in near], dtype=torch.float64) * torch.exp(-dm_n[near] ** 2 / 2 - dv_n[near] ** 2 / 2)
        nbr = sum(w[t] * cov[others[j]] for t, j in enumerate(near)) / w.sum()
        alpha = 1 / (1 + math.log(1 + beta * (counts[c] - 1))) if counts[c] <= tau else 0.0
        out[c] = (1 - alpha) * cov[c] + alpha * ((1 - gamma) * nbr + gamma * g)
    return out


def test_class_statistics_blend_as_the_authors_estimator_over_successive_passes():
    torch.manual_seed(0)
    iaa = IntraClassAugmentation(5, 6, momentum=0.2, correction=False).double()
    mean, cov, amount = torch.zeros(5, 6, dtype=torch.float64), torch.zeros(5, 6, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for shift in (0.0, 0.5, -0.3):  # three passes over a training set that moves
        y = torch.tensor([0] * 9 + [1] * 5 + [2] * 2 + [4] * 7)  # class 3 absent: untouched
        z = torch.randn(len(y), 6, dtype=torch.float64) + shift + y[:, None]
        iaa.estimate(z, y)
        mean, cov, amount = authors_update(mean, cov, amount, z, y, momentum=0.2)
        torch.testing.assert_close(iaa.mean, mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(iaa.variance, cov, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(iaa.seen, amount)
        torch.testing.assert_close(iaa.corrected, iaa.variance)  # correction off: the released code's behaviour
    assert bool(iaa.ready)


def test_neighbour_correction_is_the_papers_formula():
    torch.manual_seed(1)
    C, k = 12, 4
    iaa = IntraClassAugmentation(C, 5, neighbors=k, beta=0.1, gamma=0.1, tau=6).double()
    sizes = [1, 2, 3, 5, 8, 10, 2, 7, 4, 1, 6, 9]  # small classes (<= tau) borrow; one-sample classes lend nothing
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    z = torch.randn(len(y), 5, dtype=torch.float64) * (1 + y[:, None] % 3) + y[:, None] * 0.2
    iaa.estimate(z, y)
    want = paper_correction(iaa.mean, iaa.variance, sizes, beta=0.1, gamma=0.1, k=k, tau=6)
    torch.testing.assert_close(iaa.corrected, want, rtol=1e-10, atol=1e-12)
    assert torch.all(iaa.corrected[0] > 0)  # a class of one sample gets a spread from its neighbours
    torch.testing.assert_close(iaa.corrected[5], iaa.variance[5])  # 10 samples > tau: its own


def test_synthetic_samples_are_drawn_around_each_sample_with_lambda_sigma():
    iaa = IntraClassAugmentation(2, 3, num_produce=4000, correction=False)
    iaa.variance.copy_(torch.tensor([[0.04, 0.01, 0.09], [1.0, 0.25, 0.0]]))
    iaa.corrected.copy_(iaa.variance)
    z, y = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, 0.0]]), torch.tensor([0, 1])
    made, labels, sources = iaa.produce(z, y, lam=0.5, generator=torch.Generator().manual_seed(0))
    assert made.shape == (8000, 3) and torch.equal(labels, y.repeat(4000)) and torch.equal(sources, torch.arange(2).repeat(4000))
    for row in (0, 1):
        mine = made[sources == row]
        torch.testing.assert_close(mine.mean(0), z[row], atol=0.04, rtol=0)
        torch.testing.assert_close(mine.var(0), 0.5 * iaa.variance[row], atol=0.02, rtol=0.06)


def test_schedule_start_refresh_and_lambda_steps():
    iaa = IntraClassAugmentation(2, 3, start=0.3, every=2)
    assert [iaa.active(e, 10) for e in range(1, 11)] == [False] * 3 + [True] * 7
    assert [iaa.due(e, 10) for e in range(1, 11)] == [False] * 3 + [True] * 7  # never estimated: due whenever active
    iaa.ready.fill_(True)
    assert [e for e in range(1, 11) if iaa.due(e, 10)] == [4, 6, 8, 10]  # the authors' (ep - start - 1) % M == 0
    assert [iaa.lam_at(e, 10) for e in (4, 5, 6, 8, 9)] == pytest.approx([0.8, 0.72, 0.72, 0.6, 0.48])


def iaa_multisimilarity(x, y, n_real, alpha=2.0, beta=40.0, base=0.5, margin=0.1, eps=1e-5):
    """The authors' losses.MultiSimilarityLoss with augmentation (anchors: the first n_real rows), re-typed."""
    sim = x[:n_real] @ x.T
    pos = (y[:n_real, None] == y[None, :]) & ~torch.eye(n_real, dtype=torch.bool, device=x.device).repeat(1, len(y) // n_real)
    neg = y[:n_real, None] != y[None, :]
    total = x.sum() * 0
    for i in range(n_real):
        p = sim[i][pos[i]]
        p = p[p < 1 - eps]
        n = sim[i][neg[i]]
        if len(p) < 1 or len(n) < 1:
            continue
        hn, hp = n[n + margin > p.min()], p[p - margin < n.max()]
        if len(hn) < 1 or len(hp) < 1:
            continue
        total = total + torch.log1p(torch.exp(-alpha * (hp - base)).sum()) / alpha + torch.log1p(torch.exp(beta * (hn - base)).sum()) / beta
    return total / n_real


def test_multisimilarity_with_iaa_is_the_authors_loss_on_the_augmented_batch():
    torch.manual_seed(3)
    loss = build("multisimilarity", num_classes=4, embedding_dim=16, beta=40.0, augmenter="iaa", iaa_start=0.0)
    train_z = torch.randn(200, 16) + 2 * torch.arange(4).repeat_interleave(50)[:, None] * torch.eye(16)[:1]
    loss.set_training_embeddings(train_z, torch.arange(4).repeat_interleave(50))
    x = torch.randn(16, 16, requires_grad=True)
    y = torch.arange(4).repeat_interleave(4)
    torch.manual_seed(7)
    value = loss(x, y)
    torch.manual_seed(7)  # the same synthetic draws
    made, made_labels, _ = loss.iaa.produce(x, y, loss.iaa.lam)
    want = iaa_multisimilarity(F.normalize(torch.cat([x, made]), dim=1), torch.cat([y, made_labels]), 16)
    torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-6)
    grad, = torch.autograd.grad(value, x)
    want_grad, = torch.autograd.grad(want, x)
    torch.testing.assert_close(grad, want_grad, rtol=1e-4, atol=1e-6)


def test_reference_pairs_never_pair_an_anchor_with_itself_or_its_copies():
    loss = build("contrastive", num_classes=3, embedding_dim=4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    ref_labels, sources = y.repeat(3), torch.arange(6).repeat(3)
    x = F.normalize(torch.randn(6, 4), dim=1)
    ref = F.normalize(torch.randn(18, 4), dim=1)
    a1, p, a2, n = loss.reference_indices(x, y, ref, ref_labels, sources)
    assert not torch.any(sources[p] == a1) and torch.all(ref_labels[p] == y[a1]) and torch.all(ref_labels[n] != y[a2])
    assert len(a1) == 6 * 3 * 1 and len(a2) == 6 * 4 * 3  # one other real positive and its 2 copies; 4 negatives × 3


def test_iaa_is_refused_for_a_loss_without_reference_embeddings():
    with pytest.raises(ValueError, match="does not take reference embeddings; use one of multisimilarity"):
        build("proxyanchor", num_classes=4, embedding_dim=8, augmenter="iaa")
    with pytest.raises(ValueError, match="are parameters of augmenter='iaa'"):
        build("multisimilarity", num_classes=4, embedding_dim=8, iaa_lambda=0.5)
    with pytest.raises(ValueError, match="iaa_start is the fraction"):
        build("multisimilarity", num_classes=4, embedding_dim=8, augmenter="iaa", iaa_start=30)


def test_training_with_iaa_estimates_on_schedule_records_its_points_and_resumes_exactly(small_synthetic, tmp_path, interrupted_then_resumed):
    args = dict(model="linear", loss="multisimilarity", augmenter="iaa", iaa_start=0.34, batch_size=32, embedding_dim=8,
                split="samples", progress=False, epochs=3)
    straight = dmlviz.train(small_synthetic, out=tmp_path / "a", **args)
    assert straight.config["augmenter"] == "iaa" and straight.config["loss_params"]["iaa_correction"] is True
    with np.load(straight.path / "epoch_0001.npz") as before:
        assert "synthetic" not in before.files  # epoch 1 is before IAA's start (round(0.34 * 3) = 1)
    arrays = straight.arrays(2, "synthetic", "synthetic_source")
    assert arrays["synthetic"].shape == (3 * 300, 8) and np.allclose(np.linalg.norm(arrays["synthetic"], axis=1), 1, atol=1e-5)
    assert set(np.unique(straight.probe["labels"][arrays["synthetic_source"]])) <= set(straight.probe["train_classes"])
    assert np.isfinite(straight.metrics["loss"].to_numpy()[1:]).all()

    resumed = interrupted_then_resumed(small_synthetic, 3, out=tmp_path / "b", **args)  # from the checkpoint of epoch 2
    np.testing.assert_array_equal(resumed.snapshot(3).embeddings, straight.snapshot(3).embeddings)
