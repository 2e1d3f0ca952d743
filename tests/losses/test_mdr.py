"""MDR against its formula recomputed independently, over successive batches (running statistics included)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dmlviz
from dmlviz.losses import MDR, Regularized, build
from dmlviz.losses.distances import mean_distance_scaled
from dmlviz.losses.sampling import distance_weighted_triplets, distance_weights


class ReferenceMDR:
    """The formula as the issue states it, written apart from dmlviz's code: float64, distances by differences."""

    def __init__(self, levels=(-3.0, 0.0, 3.0), momentum=0.9):
        self.levels = torch.tensor(levels, dtype=torch.float64, requires_grad=True)
        self.momentum, self.mean, self.std = momentum, None, None

    def __call__(self, x):
        n = len(x)
        diff = x[:, None, :] - x[None, :, :]
        dist = torch.where(torch.eye(n, dtype=torch.bool), torch.zeros(()), (diff.pow(2).sum(-1)).clamp(min=1e-12).sqrt())
        values = dist.detach().reshape(-1).numpy()
        mean, std = values.mean(), values.std(ddof=1)  # whole matrix, zero diagonal included, unbiased
        if self.mean is None:
            self.mean, self.std = mean, std
        else:
            self.mean = self.momentum * self.mean + (1 - self.momentum) * mean
            self.std = self.momentum * self.std + (1 - self.momentum) * std
        total, pairs = 0.0, 0
        for i in range(n):
            for j in range(n):
                if i != j:
                    d_hat = (dist[i, j] - self.mean) / self.std
                    total = total + torch.stack([(d_hat - level).abs() for level in self.levels]).min()
                    pairs += 1
        return total / pairs


def test_mdr_equals_the_formula_over_successive_batches():
    torch.manual_seed(0)
    ours, reference = MDR().double(), ReferenceMDR()
    for step in range(4):
        x = (torch.randn(10, 6, dtype=torch.float64) * (1 + step)).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        value = ours(x)
        expected = reference(x_ref)
        assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)
        assert float(ours.running_mean) == pytest.approx(reference.mean, rel=1e-12)
        assert float(ours.running_std) == pytest.approx(reference.std, rel=1e-12)
        grads = torch.autograd.grad(value, [x, ours.levels])
        expected_grads = torch.autograd.grad(expected, [x_ref, reference.levels])
        torch.testing.assert_close(grads[0], expected_grads[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(grads[1], expected_grads[1], rtol=1e-9, atol=1e-12)
        with torch.no_grad():  # levels move, as an optimizer would move them
            ours.levels.add_(0.1 * grads[1])
            reference.levels.add_(0.1 * expected_grads[1])
    assert bool(ours.initialized)


def test_mdr_statistics_are_saved_and_restored():
    torch.manual_seed(1)
    batches = [torch.randn(12, 5) for _ in range(4)]
    straight = MDR()
    for x in batches:
        last = straight(x)
    first = MDR()
    for x in batches[:2]:
        first(x)
    again = MDR()
    again.load_state_dict(first.state_dict())
    for x in batches[2:]:
        resumed = again(x)
    assert float(resumed) == float(last)
    assert float(again.running_mean) == float(straight.running_mean)


def test_mdr_checks_its_input():
    with pytest.raises(ValueError, match=r"MDR needs embeddings of shape \(batch >= 2, dim\), got \(1, 4\)"):
        MDR()(torch.randn(1, 4))
    with pytest.raises(ValueError, match="momentum must be in"):
        MDR(momentum=1.0)


def test_regularized_total_is_loss_plus_weighted_mdr_and_level_penalty():
    torch.manual_seed(2)
    x, y = torch.randn(16, 8), torch.arange(4).repeat_interleave(4)
    loss = build("triplet", num_classes=4, embedding_dim=8, regularizer="mdr", lambda_mdr=0.3, nu_mdr=0.05, mining="hard")
    assert isinstance(loss, Regularized) and loss.name == "triplet+mdr"
    total = loss(x, y)
    plain = build("triplet", num_classes=4, embedding_dim=8, mining="hard")(x, y)
    reference = MDR()
    expected = plain + 0.3 * reference(F.normalize(x, dim=1)) + 0.05 * 18.0
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert set(loss.terms) == {"loss", "mdr", "mdr_levels"}
    assert loss.hparams["lambda_mdr"] == 0.3 and loss.hparams["mining"] == "hard"
    assert set(loss.snapshot_arrays()) == {"mdr_levels", "mdr_running_mean", "mdr_running_std"}


def test_regularizer_parameters_without_the_regularizer_are_refused():
    with pytest.raises(ValueError, match=r"\['lambda_mdr'\] are parameters of regularizer='mdr'"):
        build("triplet", num_classes=4, embedding_dim=8, lambda_mdr=0.6)
    with pytest.raises(ValueError, match="regularizer must be one of"):
        build("triplet", num_classes=4, embedding_dim=8, regularizer="l2")


def test_learning_without_l2_norm_divides_by_the_mean_distance():
    torch.manual_seed(3)
    x = torch.randn(9, 4) * 7
    scaled = mean_distance_scaled(x)
    d = torch.cdist(scaled, scaled)
    assert float(d[~torch.eye(9, dtype=torch.bool)].mean()) == pytest.approx(1.0, rel=1e-5)
    loss = build("triplet", num_classes=3, embedding_dim=4, scale="mean_distance", mining="distance", margin=0.2)
    torch.testing.assert_close(loss.measure(x), scaled)


def test_distance_weights_follow_the_inverse_sphere_density():
    torch.manual_seed(4)
    dim = 8
    x = F.normalize(torch.randn(24, dim), dim=1)
    y = torch.arange(6).repeat_interleave(4)
    w = distance_weights(x, y)
    d = torch.cdist(x.double(), x.double()).clamp(min=0.5)
    for i in range(len(x)):
        negatives = (y != y[i]) & (d[i] < 1.4)
        inv_q = 1.0 / (d[i] ** (dim - 2) * (1 - d[i] ** 2 / 4) ** ((dim - 3) / 2))
        expected = torch.where(negatives, inv_q, torch.zeros(())).double()
        if expected.sum() == 0:
            expected = (y != y[i]).double()
        torch.testing.assert_close(w[i].double(), expected / expected.sum(), rtol=1e-4, atol=1e-6)
    anchors, positives, negatives = distance_weighted_triplets(x, y)
    pairs = {(int(a), int(p)) for a, p in zip(anchors, positives)}
    assert len(pairs) == len(anchors) == 6 * 4 * 3  # every ordered positive pair, once
    assert bool((y[anchors] == y[positives]).all()) and bool((y[anchors] != y[negatives]).all())


def test_distance_weights_fall_back_to_uniform_when_every_negative_is_far():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])  # classes antipodal: distances ≈ 2
    y = torch.tensor([0, 0, 1, 1])
    w = distance_weights(x, y)
    torch.testing.assert_close(w[0], torch.tensor([0.0, 0.0, 0.5, 0.5]))


def test_triplet_with_mdr_trains_records_levels_and_resumes_exactly(small_synthetic, tmp_path):
    args = dict(model="linear", loss="triplet", regularizer="mdr", mining="distance", margin=0.2, scale="mean_distance",
                lambda_mdr=0.6, nu_mdr=0.01, batch_size=32, embedding_dim=8, split="samples", progress=False)
    straight = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "a", **args)
    assert straight.config["regularizer"] == "mdr" and straight.config["embedding_scale"] == "mean_distance"
    assert {"loss_mdr", "loss_mdr_levels"} <= set(straight.metrics.columns)
    levels = [straight.arrays(e, "mdr_levels")["mdr_levels"] for e in straight.epochs]
    np.testing.assert_array_equal(levels[0], [-3.0, 0.0, 3.0])
    assert not np.array_equal(levels[-1], levels[0])  # the levels learn
    assert float(straight.arrays(3, "mdr_running_std")["mdr_running_std"]) > 0
    dmlviz.train(small_synthetic, epochs=1, out=tmp_path / "b", **args)
    resumed = dmlviz.train(small_synthetic, epochs=3, out=tmp_path / "b", resume=True, **args)
    np.testing.assert_array_equal(resumed.snapshot(3).embeddings, straight.snapshot(3).embeddings)
    np.testing.assert_array_equal(resumed.arrays(3, "mdr_running_mean")["mdr_running_mean"],
                                  straight.arrays(3, "mdr_running_mean")["mdr_running_mean"])


def test_the_cli_spells_the_regularizer_as_python_does():
    from dmlviz.cli import build_parser, train_config

    args = build_parser().parse_args(["train", "--loss", "triplet", "--regularizer", "mdr", "--param", "lambda_mdr=0.2", "--param", "nu_mdr=0.01"])
    config = train_config(args)
    assert config.regularizer == "mdr" and config.loss_params == {"lambda_mdr": 0.2, "nu_mdr": 0.01}
    from dmlviz.training import TrainConfig

    assert config == TrainConfig.from_options(loss="triplet", regularizer="mdr", lambda_mdr=0.2, nu_mdr=0.01)
