"""DAS: its frequency counts and transformation banks as the authors keep them, the points it makes, training with it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dmlviz
from dmlviz.losses import Augmented, build
from dmlviz.losses.das import DenselyAnchoredSampling


class ReferenceBank:
    """The authors' MemoryBank.enqueue_dequeue, re-typed (one class)."""

    def __init__(self, size, dim):
        self.size, self.ptr, self.rows = size, 0, torch.zeros(size, dim)

    def push(self, trans):
        q = len(trans)
        if q > self.size:
            self.rows = trans[-self.size:].clone()
        elif self.ptr + q > self.size:
            end = min(self.ptr + q, self.size)
            remain = q - (end - self.ptr)
            self.rows[self.ptr:end] = trans[:-remain]
            self.rows[:remain] = trans[-remain:]
            self.ptr = remain
        else:
            self.rows[self.ptr:self.ptr + q] = trans
            self.ptr += q


def test_frequencies_and_banks_follow_the_authors():
    torch.manual_seed(0)
    das = DenselyAnchoredSampling(num_classes=3, dim=6, num_scale=2, bank_size=5)
    refs = [ReferenceBank(5, 6) for _ in range(3)]
    counts = torch.zeros(3, 6)
    batches = [torch.arange(3).repeat_interleave(m) for m in (2, 3, 2, 2)]  # m per class: 2 or 6 differences each
    batches += [torch.tensor([0, 2, 0, 2, 2, 0, 0]), torch.tensor([1, 1, 2, 2]), torch.tensor([2, 1, 2])]  # uneven, a class absent
    for y in batches:
        x = torch.randn(len(y), 6)
        das.update(x, y)
        for xi, yi in zip(x, y):
            for d in torch.topk(xi, 2).indices:
                counts[yi, d] += 1
        for c in range(3):
            members = x[y == c]
            diffs = (members[:, None] - members[None]).reshape(-1, 6)
            refs[c].push(diffs[diffs.abs().sum(1) > 0])
    torch.testing.assert_close(das.frequency, counts)
    for c in range(3):
        torch.testing.assert_close(das.bank[c], refs[c].rows)
        assert int(das.pointer[c]) == refs[c].ptr


def test_produced_points_scale_the_frequent_dimensions_and_shift_by_a_banked_difference():
    torch.manual_seed(1)
    das = DenselyAnchoredSampling(num_classes=2, dim=8, num_produce=2, num_scale=3, scale_low=0.5, scale_high=2.0, shift=0.1)
    x, y = F.normalize(torch.randn(8, 8), dim=1), torch.arange(2).repeat_interleave(4)
    das.update(x, y)
    x = x.requires_grad_(True)
    produced, labels = das.produce(x, y, normalize=False)
    assert produced.shape == (16, 8) and torch.equal(labels, y.repeat(2)) and not produced.requires_grad
    top = torch.topk(das.frequency[y], 3).indices
    rest = torch.ones(8, 8, dtype=torch.bool).scatter(1, top, False)
    for copy in produced.view(2, 8, 8):
        shift = copy - x.detach()
        shift[~rest] = 0  # on the untouched dimensions the copy differs by the bank's difference only
        for i in range(8):
            banked = das.bank[y[i]]
            assert any(torch.allclose(shift[i][rest[i]], 0.1 * b[rest[i]], atol=1e-6) for b in banked)
    unit, _ = das.produce(x, y)
    torch.testing.assert_close(unit.norm(dim=1), torch.ones(16))


def test_the_augmented_loss_is_the_base_on_real_and_synthetic_points_and_recording_leaves_the_state():
    torch.manual_seed(2)
    loss = build("multisimilarity", num_classes=4, embedding_dim=8, augmenter="das", das_num_scale=3)
    assert isinstance(loss, Augmented) and loss.name == "multisimilarity+das" and loss.needs_pairs
    x, y = torch.randn(16, 8), torch.arange(4).repeat_interleave(4)
    torch.manual_seed(5)
    value = loss(x, y)
    twin = build("multisimilarity", num_classes=4, embedding_dim=8, augmenter="das", das_num_scale=3)
    twin.das.update(F.normalize(x, dim=1), y)
    torch.manual_seed(5)
    produced, labels = twin.das.produce(F.normalize(x, dim=1), y)
    expected = twin.base(torch.cat([F.normalize(x, dim=1), produced]), torch.cat([y, labels]))
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    points, sources = loss.synthetic_points(x[:5], y[:5], seed=3)
    assert points.shape == (15, 8) and sources.tolist() == [0, 1, 2, 3, 4] * 3
    assert all(torch.equal(state[k], v) for k, v in loss.state_dict().items())
    with pytest.raises(ValueError, match=r"are parameters of augmenter='das'"):
        build("multisimilarity", num_classes=4, embedding_dim=8, das_shift=0.1)


def test_training_with_das_records_synthetic_points_and_resumes_exactly(small_synthetic, tmp_path):
    args = dict(model="linear", loss="multisimilarity", augmenter="das", das_num_scale=4, batch_size=32, embedding_dim=8,
                split="samples", progress=False)
    straight = dmlviz.train(small_synthetic, epochs=2, out=tmp_path / "a", **args)
    assert straight.config["augmenter"] == "das" and straight.config["loss_params"]["das_num_produce"] == 3
    arrays = straight.arrays(2, "synthetic", "synthetic_source")
    assert arrays["synthetic"].shape == (3 * 300, 8) and np.allclose(np.linalg.norm(arrays["synthetic"], axis=1), 1, atol=1e-5)
    assert set(np.unique(straight.probe["labels"][arrays["synthetic_source"]])) <= set(straight.probe["train_classes"])
    dmlviz.train(small_synthetic, epochs=1, out=tmp_path / "b", **args)
    resumed = dmlviz.train(small_synthetic, epochs=2, out=tmp_path / "b", resume=True, **args)
    np.testing.assert_array_equal(resumed.snapshot(2).embeddings, straight.snapshot(2).embeddings)
