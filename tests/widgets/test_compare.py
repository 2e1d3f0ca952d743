"""The comparison: registered maps, one shared epoch and selection, a metrics table with the best marked."""

import numpy as np
import pytest

import dmlviz
from dmlviz.widgets import Compare, CompareChooser


@pytest.fixture(scope="module")
def grid(tmp_path_factory, small_synthetic):
    root = tmp_path_factory.mktemp("cmp")
    common = dict(model="linear", epochs=2, batch_size=32, embedding_dim=8, split="samples", progress=False)
    return [dmlviz.train(small_synthetic, loss=loss, out=root / loss, **common) for loss in ("softmax", "softtriple", "proxyanchor")]


def test_maps_share_epoch_and_selection_and_are_registered(grid):
    view = Compare(grid)
    assert len(view.maps) == 3
    view.states[2].epoch = 0
    assert [s.epoch for s in view.states] == [0, 0, 0]
    assert all(m.epoch_slider.value == 0 for m in view.maps)
    view.states[1].selection = [4, 5, 6]  # a lasso in the second map
    assert all(tuple(m.figure.data[0].selectedpoints) == (4, 5, 6) for m in view.maps)
    assert all("3 selected" in m.selected.value for m in view.maps)
    view.states[0].selected_sample = 7  # a click in the first
    assert [s.selected_sample for s in view.states] == [7, 7, 7]
    view.states[0].epoch = 2
    reference = view.states[0].layout(2).points
    for state in view.states[1:]:
        raw = super(type(state), state).layout(2).points
        registered = state.layout(2).points
        assert np.linalg.norm(registered - reference) < np.linalg.norm(raw - reference)
        assert state.transform(2).residual < 1.0
    assert "residual" in view.titles[1].value and "the reference map" in view.titles[0].value


def test_the_table_marks_the_best_of_each_column_and_shows_baselines(grid):
    view = Compare(grid)
    rows = view.metrics_rows(2)
    best = max(rows, key=lambda r: r["recall@1"])
    html = view.table.value
    assert f"<b>{best['recall@1']:.3f}</b>&nbsp;<b>★</b>" in html
    assert "untrained (epoch 0" in html and "chance (R@1 of a random neighbour, NMI of random clusters" in html
    assert f"{view.runs[0].metrics['nmi_chance'].iloc[-1]:.3f}{'&nbsp;'}" in html  # NMI's chance level, in its column
    assert html.count("<b>★</b>") >= 5


def test_runs_with_another_probe_are_refused(grid, small_synthetic, tmp_path):
    other = dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, batch_size=32, embedding_dim=8, split="samples",
                         seed=3, out=tmp_path / "other", progress=False)
    with pytest.raises(ValueError, match=r"do not share their probe \(seed: 0 vs 3\)"):  # the same samples, split otherwise
        Compare([grid[0], other])
    with pytest.raises(ValueError, match="at least 2 runs"):
        Compare([grid[0]])


def test_the_chooser_opens_the_named_runs_and_reports_bad_ones(grid):
    root = grid[0].path.parent
    chooser = CompareChooser(root, initial=["softmax", "proxyanchor"])
    assert isinstance(chooser.body.children[0], Compare) and set(chooser.select.value) == {"softmax", "proxyanchor"}
    chooser.show(["softmax", "nope"])
    assert "no run named &#x27;nope&#x27;" in chooser.message.value and chooser.body.children == ()


def test_runs_of_different_lengths_show_their_nearest_epoch(grid, small_synthetic, tmp_path):
    shorter = dmlviz.train(small_synthetic, "linear", "proxyanchor", epochs=1, batch_size=32, embedding_dim=8, split="samples",
                           out=tmp_path / "short", progress=False)
    view = Compare([grid[0], shorter])
    assert [s.epoch for s in view.states] == [2, 1] or [s.epoch for s in view.states] == [1, 1]
    assert "epoch 1" in view.titles[1].value
    view.states[0].epoch = 0
    assert [s.epoch for s in view.states] == [0, 0]


def test_runs_recorded_from_a_later_epoch_still_get_the_chance_row(tmp_path):
    """Runs without an epoch 0 (e.g. logged from epoch 1 by a user's loop) have no untrained row, but still the chance row."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    split = np.where(np.arange(80) % 2 == 0, "train", "test")
    runs = []
    for name in ("a", "b"):
        with dmlviz.Recorder(tmp_path / name, labels=labels, split=split) as rec:
            for epoch in (1, 2):
                rec.log(epoch, rng.normal(size=(80, 8)))
        runs.append(dmlviz.load_run(tmp_path / name))
    html = Compare(runs).table.value
    assert "untrained" not in html and "chance (R@1 of a random neighbour, NMI of random clusters" in html
