"""CCP-DML: the loss as the authors compute it, their greedy k-center, the instance controller (switch, re-seed,
proximal pull), and training with it, resumed across a switch."""

import numpy as np
import pytest
import torch

import dmlviz
from dmlviz.losses import build
from dmlviz.losses.ccp import greedy_k_center, to_unit_ball


def authors_k_center(pool, initial, k):
    """proxy_utils.greedyKCenter re-typed with loops (numpy, float64): per class, the farthest point from the set so far."""
    out = np.zeros((pool.shape[0], k, pool.shape[2]))
    for c in range(pool.shape[0]):
        m = np.array([min(((p - q) ** 2).sum() for q in initial[c]) for p in pool[c]])
        for j in range(k):
            i = int(np.argmax(m))
            out[c, j] = pool[c, i]
            m = np.minimum(m, ((pool[c] - pool[c, i]) ** 2).sum(axis=1))
    return out


def test_greedy_k_center_is_the_authors():
    rng = np.random.default_rng(0)
    pool, initial = rng.normal(size=(3, 12, 5)), rng.normal(size=(3, 4, 5))
    got = greedy_k_center(torch.from_numpy(pool), torch.from_numpy(initial), 4).numpy()
    np.testing.assert_allclose(got, authors_k_center(pool, initial, 4))
    from_zero = greedy_k_center(torch.from_numpy(pool), torch.zeros(3, 4, 5, dtype=torch.float64), 4).numpy()
    norms = (pool**2).sum(-1)
    np.testing.assert_allclose(from_zero[:, 0], pool[np.arange(3), norms.argmax(1)])  # the first seeding starts from the largest norm


def contrastive(x, y, ref, ref_y, pos_margin, neg_margin, same_rows):
    """mean over non-zero [d - m+]_+ + mean over non-zero [m- - d]_+ (the authors' contrastive loss), with loops."""
    pos, neg = [], []
    for i in range(len(x)):
        for j in range(len(ref)):
            if same_rows and i == j:
                continue
            d = torch.linalg.norm(x[i] - ref[j])
            (pos if y[i] == ref_y[j] else neg).append(torch.relu(d - pos_margin) if y[i] == ref_y[j] else torch.relu(neg_margin - d))
    mean = lambda v: sum(v) / max(1, sum(1 for t in v if t > 0))  # noqa: E731
    return mean(pos) + mean(neg)


def test_loss_is_the_weighted_contrastive_on_the_batch_and_against_the_proxies_in_the_unit_ball():
    torch.manual_seed(0)
    loss = build("ccp", num_classes=3, embedding_dim=4, proxies_per_class=2).double()
    with torch.no_grad():
        loss.proxies.mul_(3.0)  # some outside the ball
    x = (torch.randn(12, 4, dtype=torch.float64) * 0.8).requires_grad_()
    y = torch.arange(3).repeat_interleave(4)
    value = loss(x, y)
    xb, pb = to_unit_ball(x), to_unit_ball(loss.proxies.reshape(6, 4))
    want = 0.1 * contrastive(xb, y, xb, y, 0.0, 0.5, True) + 1.0 * contrastive(xb, y, pb, loss.proxy_labels(), 0.0, 0.5, False)
    torch.testing.assert_close(value, want)
    torch.testing.assert_close(torch.autograd.grad(value, x)[0], torch.autograd.grad(want, x)[0])
    assert set(loss.terms) == {"batch", "proxies", "proximal"} and loss.terms["proximal"] == 0.0


def test_an_instance_switches_after_patience_epochs_without_gain_reseeds_and_pulls_to_the_best_weights():
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 4)
    loss = build("ccp", num_classes=2, embedding_dim=4, proxies_per_class=2, pool_size=3, patience=2, proximal=0.5)
    labels = torch.arange(2).repeat_interleave(6)
    z = torch.randn(12, 4)
    loss.start_epoch(1, 10, model)
    loss.set_training_embeddings(z, labels)  # the start of training: seeded from samples
    assert loss.reseeded and loss.instance == 0
    assert all(any(torch.equal(p, row) for row in z) for p in loss.proxies.detach().reshape(-1, 4))  # proxies are samples
    best = [w.detach().clone() for w in model.parameters()]
    for epoch in (2, 3, 4):  # the same embeddings: MAP@R never gains after the first measurement
        loss.start_epoch(epoch, 10, model)
        with torch.no_grad():
            for w in model.parameters():
                w.add_(0.1)  # the model moves on
        loss.set_training_embeddings(z, labels)
        if epoch == 2:
            best = [w.detach().clone() for w in model.parameters()]
        assert loss.instance == (1 if epoch == 4 else 0) and loss.reseeded == (epoch == 4)
    x, y = torch.randn(8, 4), torch.arange(2).repeat_interleave(4)
    value = loss(x, y)
    grads = torch.autograd.grad(value, list(model.parameters()))
    for g, w, b in zip(grads, model.parameters(), best):  # d/dθ of λ/2‖θ − θ_best‖² (the rest of the loss does not see the model)
        torch.testing.assert_close(g, 0.5 * (w.detach() - b))
    assert loss.terms["proximal"] == pytest.approx(0.25 * sum(float(((w.detach() - b) ** 2).sum()) for w, b in zip(model.parameters(), best)), rel=1e-5)


def test_training_with_ccp_records_the_switch_and_resumes_exactly_across_it(small_synthetic, tmp_path, interrupted_then_resumed):
    args = dict(model="linear", loss="ccp", proxies_per_class=2, pool_size=4, patience=1, batch_size=32, embedding_dim=8,
                split="samples", progress=False, epochs=5, lr=1e-9, center_lr=1e-9)  # nothing learns: MAP@R never gains
    straight = dmlviz.train(small_synthetic, out=tmp_path / "a", **args)
    flags = [bool(straight.arrays(e, "ccp_reseeded")["ccp_reseeded"]) for e in straight.epochs]
    instances = [int(straight.arrays(e, "ccp_instance")["ccp_instance"]) for e in straight.epochs]
    # epoch 1 begins seeded; the start of epoch 2 measures (a gain over nothing), of 3 finds none: switch; a new instance's
    # first measurement is a gain again (epoch 4), the next is not (epoch 5)
    assert flags == [False, True, False, True, False, True] and instances == [0, 0, 0, 1, 1, 2]
    radius = straight.arrays(1, "ccp_covering_radius")["ccp_covering_radius"]
    assert radius.shape == (len(straight.probe["train_classes"]),) and np.all((radius >= 0) & (radius <= 2))
    assert straight.config["embedding_scale"] == "ball"

    resumed = interrupted_then_resumed(small_synthetic, 5, out=tmp_path / "b", **args)  # from the checkpoint of epoch 4
    np.testing.assert_array_equal(resumed.snapshot(5).centers, straight.snapshot(5).centers)  # re-seeded the same way
    np.testing.assert_array_equal(resumed.snapshot(5).embeddings, straight.snapshot(5).embeddings)
    assert int(resumed.arrays(5, "ccp_instance")["ccp_instance"]) == 2
