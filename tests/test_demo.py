"""The demo's claims, each against a baseline the trained run must beat (and an untrained model fails)."""

import numpy as np
import pytest

import dmlviz
from dmlviz.demo import DEMO_RUNS, demo_runs, demo_settings, format_summary, random_center_submode, summarize, true_modes
from dmlviz.eval import effective_k


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    runs = demo_runs(root, progress=False)
    return root, runs, {name: summarize(run) for name, run in runs.items()}


@pytest.mark.slow
def test_softtriple_centers_split_classes_along_their_digits_better_than_every_baseline(demo):
    _, runs, s = demo
    assert set(runs) == set(DEMO_RUNS)
    softmax, softtriple = s["softmax"], s["softtriple"]
    # one center per class cannot split a class: the score is 0 by construction
    assert softmax["submode_score"] == 0.0
    # trained SoftTriple beats the untrained model, random centers with the same K on its own embedding, and SoftMax
    margin = 0.1
    assert softtriple["submode_score"] > softtriple["submode_score_epoch0"] + margin
    assert softtriple["submode_score"] > softtriple["submode_score_random_centers"] + margin
    assert softtriple["submode_score"] > softmax["submode_score"] + margin
    # and the untrained model fails the same test against random centers
    assert softtriple["submode_score_epoch0"] < random_center_submode(runs["softtriple"], 0) + margin


@pytest.mark.slow
def test_centers_merge_to_the_true_number_of_modes_and_not_without_the_regularizer(demo, tmp_path):
    _, runs, s = demo
    merging = s["merging"]
    k = DEMO_RUNS["merging"]["centers_per_class"]
    modes = true_modes(runs["merging"])
    assert modes == [3, 3, 3, 3]
    assert merging["effective_k_first"] == [k] * 4  # epoch 0: nothing merged
    # random centers with the same K: nothing merged either (ε = 0.05 on the unit sphere)
    random = np.random.default_rng(0).normal(size=(4, k, 64))
    assert effective_k(random).tolist() == [k] * 4
    # trained: every class ends within one of its true number of modes, most exactly on it
    last = np.array(merging["effective_k_last"])
    assert np.all(np.abs(last - modes) <= 1) and np.sum(last == modes) >= 3
    # the merging is the regularizer's: the same run with τ = 0 keeps all K centers apart
    control = dmlviz.train(**{**demo_settings("merging"), "tau": 0.0}, out=tmp_path / "no-regularizer", progress=False)
    assert control.snapshot(control.epochs[-1]).effective_k.tolist() == [k] * 4
    # merging happens while the centers keep the modes apart: sub-modes found on held-out samples
    assert merging["submode_score"] > merging["submode_score_random_centers"] + 0.2


@pytest.mark.slow
def test_demo_table_and_a_second_call_trains_nothing(demo):
    root, runs, s = demo
    table = format_summary(list(s.values()))
    assert "mnist5k-pairs-softtriple" in table and "→" in table and "(random)" in table
    again = demo_runs(root, progress=False)
    assert again["softtriple"].info["updated"] == runs["softtriple"].info["updated"]
