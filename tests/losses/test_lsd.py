"""Listwise self-distillation: the term against its formula, the ramp, the teacher, and training with it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dmlviz
from dmlviz.losses import build
from dmlviz.losses.lsd import ListwiseDistillation


def test_lsd_is_tau_squared_mean_kl_of_softened_similarity_rows():
    torch.manual_seed(0)
    student, teacher = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 6, dtype=torch.float64)
    term = ListwiseDistillation(alpha=200.0, tau=0.5)
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    total = 0.0
    for i in range(10):
        q = torch.softmax(t[i] @ t.T / 0.5, dim=0)
        p = torch.softmax(s[i] @ s.T / 0.5, dim=0)
        total += float((q * (q.log() - p.log())).sum())
    assert float(term(student, teacher)) == pytest.approx(0.25 * total / 10, rel=1e-10)
    assert float(term(teacher, teacher)) == pytest.approx(0.0, abs=1e-12)


def test_the_teacher_is_a_frozen_copy_and_the_weight_ramps_from_zero():
    net = torch.nn.Linear(4, 3)
    term = ListwiseDistillation()
    term.start_epoch(1, 10, net)
    assert term.weight() == 0.0
    x = torch.randn(5, 4)
    before = term.teacher_embed(x)
    with torch.no_grad():
        net.weight.add_(1.0)  # the student moves on; the teacher stays
    torch.testing.assert_close(term.teacher_embed(x), before)
    term.start_epoch(6, 10, net)
    assert term.weight() == pytest.approx(200.0 * 0.5)
    assert not any(p.requires_grad for p in term._teacher[0].parameters())
    assert "lsd" not in "".join(build("softmax", 4, 3, regularizer="lsd").state_dict())  # the teacher is not saved


def test_training_with_lsd_distils_after_the_first_epoch_and_resumes_exactly(small_synthetic, tmp_path):
    args = dict(model="mlp", loss="multisimilarity", regularizer="lsd", lsd_alpha=50.0, lsd_epochs=3, batch_size=32, embedding_dim=8,
                split="samples", progress=False)
    straight = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "a", **args)
    lsd = straight.metrics.set_index("epoch")["loss_lsd"]
    assert lsd[1] == 0.0 and lsd[2] > 0 and lsd[3] > 0
    assert straight.config["regularizer"] == "lsd" and straight.config["loss_params"]["lsd_alpha"] == 50.0
    dmlviz.train(small_synthetic, epochs=2, out=tmp_path / "b", **args)
    resumed = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "b", resume=True, **args)
    np.testing.assert_array_equal(resumed.snapshot(3).embeddings, straight.snapshot(3).embeddings)
    with pytest.raises(ValueError, match=r"\['lambda_mdr'\] are not parameters of regularizer='lsd'"):
        build("softmax", 4, 3, regularizer="lsd", lambda_mdr=0.1)
