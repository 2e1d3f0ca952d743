"""Widget logic without a browser: build each view on a small run, drive its callbacks, check state and figure data."""

from __future__ import annotations

import datetime
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

import dmlviz
from dmlviz.widgets import (
    ClassInspector, Explorer, ExplorerState, MapView, MergeTimeline, MetricsView, NeighborsView, RunChooser, resolve_run,
)
from dmlviz.widgets.colors import palette


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """digits-pairs (images, fine labels), SoftTriple K=3, 2 epochs."""
    out = tmp_path_factory.mktemp("wruns") / "digits"
    return dmlviz.train("digits-pairs", "linear", "softtriple", epochs=2, batch_size=64, embedding_dim=16, split="samples",
                        centers_per_class=3, out=out, progress=False)


def _points(ids):
    return SimpleNamespace(point_inds=list(ids), xs=[], ys=[])


def test_map_draws_every_point_and_centers_and_follows_the_epoch(small_run):
    state = ExplorerState(small_run)
    view = MapView(state)
    samples, centers = view.figure.data[0], view.figure.data[1]
    assert len(samples.x) == 320 and len(centers.x) == 4 * 3
    assert state.epoch == 3 and view.epoch_slider.value == 3 and view.epoch_slider.max == 3
    before = np.array(samples.x)
    view.epoch_slider.value = 0  # the user moves the slider
    assert state.epoch == 0
    assert not np.allclose(np.array(view.figure.data[0].x), before)
    layout = state.layout(0)
    np.testing.assert_allclose(view.figure.data[0].x, layout.points[:, 0], rtol=1e-6)


def test_map_status_gives_each_faithfulness_figure_its_chance_level(small_run):
    state = ExplorerState(small_run)
    view = MapView(state)
    layout = state.layout(state.epoch)
    status = view.status.value
    assert f"k-NN preservation <b>{layout.quality:.2f}</b>" in status
    assert f"chance {10 / 319:.2f} for points placed at random" in status  # 320 points, k = 10
    assert layout.ownership == layout.ownership  # SoftTriple, K = 4: some class has two owning centers
    assert f"chance {layout.ownership_chance:.2f} if the centers said nothing of their samples" in status
    assert 0.25 <= layout.ownership_chance <= 0.5  # between 1/4 (four owners a class) and 1/2 (two)


def test_map_colour_modes_split_filter_and_selection(small_run):
    state = ExplorerState(small_run)
    view = MapView(state)
    snap = state.snapshot()
    np.testing.assert_array_equal(view.figure.data[0].marker.color, snap.labels)
    state.color_by = "fine"
    np.testing.assert_array_equal(view.figure.data[0].marker.color, snap.fine_labels)
    # fine-label colours are not class colours: the legend names fine labels and centers turn dark grey
    assert "fine labels:" in view.legend.value and set(view.figure.data[1].marker.color) == {"#444444"}
    state.color_by = "center"
    # only one class is coloured by center (here none is selected: the one with most owning centers);
    # every other sample is grey (-1), so center colours cannot be read as classes
    picked = view._center_class(snap)
    colours = np.array(view.figure.data[0].marker.color)
    np.testing.assert_array_equal(colours, np.where(snap.labels == picked, snap.assignments, -1))
    assert f"class <b>{snap.class_names[picked]}</b>" in view.colour_note.value
    state.selected_class = (picked + 1) % 4
    np.testing.assert_array_equal(np.array(view.figure.data[0].marker.color), np.where(snap.labels == state.selected_class, snap.assignments, -1))
    state.selected_class = -1
    state.color_by = "nn"
    assert set(np.unique(view.figure.data[0].marker.color)) <= {0.0, 1.0}
    assert "in this probe, same split" in view.colour_note.value and "uses every test sample" in view.colour_note.value
    view.split_toggle.value = "test"
    assert state.split == "test" and len(view.figure.data[0].x) == int((snap.split == "test").sum())
    # lasso selection and click map trace indices back to probe rows
    view._on_selection(None, _points([0, 1, 2]), None)
    test_rows = np.flatnonzero(snap.split == "test")
    assert state.selection == test_rows[:3].tolist()
    view._on_click(None, _points([5]), None)
    assert state.selected_sample == test_rows[5]
    assert len(view.figure.data[3].x) == 1  # the selected sample is ringed
    state.selected_class = 2
    opacity = np.array(view.figure.data[0].marker.opacity)
    assert opacity[snap.labels[test_rows] == 2].min() > opacity[snap.labels[test_rows] != 2].max()


def test_map_samples_above_the_point_limit_and_says_so(small_run):
    view = MapView(ExplorerState(small_run), max_points=100)
    assert len(view.figure.data[0].x) == 100
    assert "showing 100 of 320 points" in view.count.value


def test_neighbours_are_found_in_the_embedding_and_highlighted(image_run):
    state = ExplorerState(image_run)
    view = NeighborsView(state, k=8)
    snap = state.snapshot()
    row = int(np.flatnonzero(snap.split == "test")[0])
    state.selected_sample = row
    assert len(state.highlighted) == 8 and row not in state.highlighted
    assert (snap.split[state.highlighted] == "test").all()
    sims = snap.embeddings[state.highlighted] @ snap.embeddings[row]
    others = np.flatnonzero((snap.split == "test") & (np.arange(len(snap)) != row))
    best = np.sort(snap.embeddings[others] @ snap.embeddings[row])[::-1][:8]
    np.testing.assert_allclose(np.sort(sims)[::-1], best, rtol=1e-5)
    assert view.results.value.count("dmlviz-tile") == 8 and view.results.value.count("<img") == 8
    right = (snap.labels[state.highlighted] == snap.labels[row]).sum()
    assert view.results.value.count("✓") == right and f"{right} of 8 neighbours right" in view.query.value
    # the worst-queries list: wrong nearest neighbours, choosing one selects it
    assert view.worst.options
    label, chosen = view.worst.options[0]
    view.worst.value = chosen
    assert state.selected_sample == chosen and "nearest is" in label
    # the similarity printed is the query's to its nearest other test sample, to 3 decimals
    nearest = np.sort(snap.embeddings[(snap.split == "test") & (np.arange(len(snap)) != chosen)] @ snap.embeddings[chosen])[-1]
    printed = label.rsplit("(cos ", 1)[1].rstrip(")")
    assert len(printed.split(".")[1]) == 3 and abs(float(printed) - nearest) <= 6e-4


def test_class_inspector_shows_each_centers_samples_and_purity(image_run):
    state = ExplorerState(image_run)
    view = ClassInspector(state)
    view.select.value = 2
    assert state.selected_class == 2
    assert view.galleries.value.count("dmlviz-center-gallery") == 3
    assert "sub-mode score" in view.summary.value and "class 2|7" in view.summary.value
    z = np.array(view.heatmap.data[0].z)
    assert z.shape == (3, 3)
    np.testing.assert_allclose(np.diag(z), 1.0, atol=1e-5)
    owned = sum(int(n) for n in __import__("re").findall(r"owns <b>(\d+)</b>", view.galleries.value))
    assert owned == int((state.snapshot().labels == 2).sum())
    # every gallery shows the samples it says it shows: min(6, owned) thumbnails, each of a sample that center owns
    import re

    snap = state.snapshot()
    for block in view.galleries.value.split('class="dmlviz-center-gallery"')[1:]:
        center, count = map(int, re.search(r"center (\d+): owns <b>(\d+)</b>", block).groups())
        rows = [int(r) for r in re.findall(r'data-row="(\d+)"', block)]
        assert len(rows) == min(6, count) == block.count("<img ")
        assert all(snap.labels[r] == 2 and snap.assignments[r] == center for r in rows)
        if count:
            assert f"the {len(rows)} it owns most similar to it" in block


def test_merge_timeline_recomputes_with_eps_and_moves_the_epoch(small_run):
    state = ExplorerState(small_run)
    view = MergeTimeline(state)
    epochs, classes, table = view.table()
    assert epochs == [0, 1, 2, 3] and table.shape == (4, 4)
    np.testing.assert_array_equal(table[:, -1], state.snapshot(3).effective_k)
    view.eps.value = 2.0  # unit vectors are at most 2 apart: (almost) one group per class
    assert state.eps == 2.0 and (np.array(view.figure.data[0].z) == 1).all()
    view._on_click(None, SimpleNamespace(xs=[1], point_inds=[0]), None)
    assert state.epoch == 1
    assert view.figure.layout.shapes[0].x0 == 1


def test_metrics_view_draws_metrics_and_moves_the_epoch(small_run):
    state = ExplorerState(small_run)
    view = MetricsView(state)
    names = {t.name for t in view.figure.data}
    assert {"recall@1", "map@r", "nmi", "sub-mode score (held-out probe samples)", "recall@1 by chance", "loss"} <= names
    recall = next(t for t in view.figure.data if t.name == "recall@1")
    assert list(recall.x) == [0, 1, 2, 3]
    loss = next(t for t in view.figure.data if t.name == "loss")
    assert loss.y[0] is None  # epoch 0 has no training loss: a gap, never NaN in a widget message
    json.dumps(view.figure.to_plotly_json(), allow_nan=False, default=lambda o: o.tolist())
    view._on_click(None, SimpleNamespace(xs=[2], point_inds=[2]), None)
    assert state.epoch == 2 and "epoch 2" in view.summary.value
    recall_line = next(t for t in view.figure.data if t.name == "recall@1 by chance")  # as recorded on the whole test split
    assert list(recall_line.y) == [pytest.approx(small_run.metrics["recall@1_chance"].iloc[-1])] * 4
    chance = small_run.metrics["nmi_chance"].iloc[-1]  # NMI with the level clusters unrelated to the embedding score
    line = next(t for t in view.figure.data if t.name == "NMI by chance (random clusters of the class sizes)")
    assert list(line.y) == [pytest.approx(chance)] * 4 and f"(chance {chance:.3f})" in view.summary.value


def test_explorer_composes_the_views_with_their_css_classes(image_run):
    explorer = Explorer(image_run)
    classes = set()

    def walk(widget):
        classes.update(getattr(widget, "_dom_classes", ()))
        for child in getattr(widget, "children", ()):
            walk(child)

    walk(explorer)
    assert {"dmlviz-map", "dmlviz-epoch", "dmlviz-neighbors", "dmlviz-class-select", "dmlviz-merge-timeline", "dmlviz-metrics"} <= classes
    explorer.state.selected_class = 1
    assert explorer.side.selected_index == 1
    explorer.close()


def test_live_run_picks_up_new_epochs(small_run, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(small_run.path, live)
    held = live.parent / "held.npz"
    shutil.move(live / "epoch_0003.npz", held)
    info = json.loads((live / "run.json").read_text())
    beat = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    (live / "run.json").write_text(json.dumps({**info, "status": "running", "heartbeat": beat}))  # a live writer's heartbeat
    explorer = Explorer(live, watch=0)
    assert explorer.state.epochs == [0, 1, 2] and explorer.state.epoch == 2
    assert "still being written" in explorer.header.value
    shutil.move(held, live / "epoch_0003.npz")
    (live / "run.json").write_text(json.dumps(info))
    assert explorer.refresh() == [3]
    assert explorer.state.epoch == 3 and explorer.map.epoch_slider.max == 3
    assert "[finished]" in explorer.header.value
    explorer.close()


def test_failed_run_shows_its_error(small_run, tmp_path):
    failed = tmp_path / "failed"
    shutil.copytree(small_run.path, failed)
    info = json.loads((failed / "run.json").read_text())
    info.update(status="failed", error="the loss became nan during epoch 4; hint: lower la")
    (failed / "run.json").write_text(json.dumps(info))
    explorer = Explorer(failed)
    assert "This run failed" in explorer.header.value and "lower la" in explorer.header.value
    assert len(explorer.map.figure.data[0].x) == 320
    explorer.close()


def test_loss_without_centers_draws_labelled_class_means(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "multisimilarity", epochs=1, batch_size=32, embedding_dim=8, split="samples", out=tmp_path / "ms", progress=False)
    state = ExplorerState(run)
    view = MapView(state)
    assert "class means" in view.figure.data[1].name and len(view.figure.data[1].x) == 4
    inspector = ClassInspector(state)
    state.selected_class = 0
    assert "class mean" in inspector.summary.value
    assert "no centers" in MergeTimeline(state).note.value


def test_k1_and_class_split_test_classes(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "softmax", epochs=1, batch_size=32, embedding_dim=8, split="classes", out=tmp_path / "k1", progress=False)
    state = ExplorerState(run)
    view = MapView(state)
    assert len(view.figure.data[1].x) == 2  # centers only for the 2 training classes, K = 1
    inspector = ClassInspector(state)
    state.selected_class = 3  # a test class: no center
    assert "no centers" in inspector.summary.value
    state.selected_class = 0
    assert inspector.galleries.value.count("dmlviz-center-gallery") == 1
    state.color_by = "center"
    assert (np.array(view.figure.data[0].marker.color)[state.snapshot().labels >= 2] == -1).all()


def test_hundred_classes_keep_distinct_colours_and_a_readable_legend(tmp_path):
    from dmlviz.data import synthetic

    data = synthetic(classes=100, modes_per_class=1, dim=8, samples_per_mode=6, seed=2)
    run = dmlviz.train(data, "linear", "proxyanchor", epochs=1, batch_size=64, embedding_dim=8, split="samples", out=tmp_path / "c100", progress=False)
    assert len(set(palette(100))) == 100
    view = MapView(ExplorerState(run))
    assert view.legend.value.count("background:#") == 100 and "overflow-y:auto" in view.legend.value
    timeline = MergeTimeline(ExplorerState(run), max_classes=60)
    assert len(timeline.figure.data[0].y) == 60 and "60 classes" in timeline.note.value


@pytest.mark.slow
def test_fifty_thousand_points_are_sampled_and_announced(tmp_path):
    from dmlviz.data import synthetic

    data = synthetic(classes=10, modes_per_class=2, dim=8, samples_per_mode=2500, seed=3)
    # a 10% test split keeps the recorded retrieval metrics cheap (MAP@R ranks a whole class per query)
    run = dmlviz.train(data, "linear", "softtriple", epochs=1, batch_size=512, embedding_dim=8, split="samples", test_fraction=0.1,
                       centers_per_class=2, probe_size=50_000, out=tmp_path / "big", progress=False)
    state = ExplorerState(run)
    assert len(state.snapshot()) == 50_000
    view = MapView(state, max_points=20_000)  # a smaller cap than the default 100,000
    assert len(view.figure.data[0].x) == 20_000 and "showing 20,000 of 50,000 points" in view.count.value
    view._on_click(None, _points([0]), None)
    assert state.selected_sample >= 0
    neighbours = NeighborsView(state)
    assert len(state.highlighted) == 8 and neighbours.worst.options


def test_run_chooser_and_run_names(small_run, tmp_path):
    empty = RunChooser(tmp_path / "nothing-here")
    assert "No runs in" in empty.message.value and not empty.select.options
    root = small_run.path.parent
    chooser = RunChooser(root, initial=small_run.name)
    assert chooser.select.value == small_run.name and isinstance(chooser.body.children[0], Explorer)
    for bad in ("..", "../x", "/etc", "a/b", ""):
        with pytest.raises(ValueError):
            resolve_run(root, bad)
    with pytest.raises(FileNotFoundError, match="no run named 'nope'"):
        resolve_run(root, "nope")
    refused = RunChooser(root, initial="..")
    assert "not a plain folder name" in refused.message.value and refused.select.value is None


def test_selection_is_summarised(small_run):
    state = ExplorerState(small_run)
    view = MapView(state)
    view._on_selection(None, _points(range(10)), None)
    assert "10 selected" in view.selected.value and "fine labels" in view.selected.value
    state.selection = []
    assert view.selected.value == ""


def test_umap_layouts_arrive_in_the_background_and_replace_pca(small_run, tmp_path):
    copy = tmp_path / "umap-run"
    shutil.copytree(small_run.path, copy, ignore=shutil.ignore_patterns("projections"))  # other tests may have laid it out
    state = ExplorerState(dmlviz.load_run(copy))
    view = MapView(state)
    pca_x = np.array(view.figure.data[0].x)
    view.layout_toggle.value = "umap"
    assert state.layout_method == "umap"
    job = state._job
    assert job.join(timeout=300) and job.error is None
    assert state.layout_status == "" and state.layout_done == state.layout_total == 4
    umap_layout = state.projector("umap").cached(state.epoch)
    assert umap_layout is not None and umap_layout.method == "umap"
    np.testing.assert_allclose(view.figure.data[0].x, umap_layout.points[:, 0], rtol=1e-6)
    assert not np.allclose(view.figure.data[0].x, pca_x)
    assert "UMAP, epoch 3" in view.status.value


def test_clicking_a_center_picks_its_class(small_run):
    state = ExplorerState(small_run)
    view = MapView(state)
    view._on_center_click(None, _points([3 * 2 + 1]), None)  # class 2's second center (K = 3)
    assert state.selected_class == 2


def test_merge_timeline_reads_effective_k_not_every_epochs_centers(small_run, monkeypatch):
    """At the recorded ε only the small effective-K arrays are read; another ε reads each epoch's centers once and lets them go."""
    read = []
    real = type(small_run).arrays

    def spy(self, epoch, *keys):
        read.append(keys)
        return real(self, epoch, *keys)

    monkeypatch.setattr(type(small_run), "arrays", spy)
    state = ExplorerState(small_run)
    view = MergeTimeline(state)
    assert read and all("centers" not in keys for keys in read)
    _, _, at_recorded = view.table()
    read.clear()
    view.eps.value = 0.3
    assert sum("centers" in keys for keys in read) == 4  # one read per epoch
    _, _, recomputed = view.table()
    from dmlviz.eval import effective_k

    np.testing.assert_array_equal(recomputed[:, -1], effective_k(state.snapshot(3).centers, eps=0.3))
    assert all(isinstance(v[1], np.ndarray) and v[1].ndim == 1 for v in view._columns.values())  # no centers held
    view.eps.value = state.snapshot(3).eps
    np.testing.assert_array_equal(view.table()[2], at_recorded)


def test_class_picker_searches_when_classes_are_many():
    from dmlviz.widgets.class_picker import SEARCH_ABOVE, ClassPicker

    picker = ClassPicker()
    picker.set_classes([0, 1, 2], ["a", "b", "a"])
    assert not picker.searching and picker.options == [("—", -1), ("a (#0)", 0), ("b", 1), ("a (#2)", 2)]
    picker.value = 1
    assert picker._dropdown.value == 1
    many = list(range(5000))
    names = [f"product {i // 2}" for i in many]  # SOP-like: names repeat
    picker.set_classes(many, names)
    assert picker.searching and len(picker._search.options) == 5000 and SEARCH_ABOVE < 5000
    assert picker.value == 1 and picker._search.value == "product 0 (#1)"  # kept, shown by its name
    picker._search.value = "product 1234 (#2469)"  # what the browser sends when a name is chosen
    assert picker.value == 2469
    picker._search.value = ""
    assert picker.value == -1
    assert "5,000 classes" in picker._count.value


def test_thousands_of_classes_get_a_search_and_no_legend_chip_each(tmp_path):
    from dmlviz.data import synthetic

    data = synthetic(classes=300, modes_per_class=1, dim=8, samples_per_mode=4, seed=0)
    run = dmlviz.train(data, loss="softmax", embedding_dim=4, epochs=1, batch_size=64, split="samples", probe_size=1200,
                       out=tmp_path / "many", progress=False)
    state = ExplorerState(run)
    inspector, view = ClassInspector(state), MapView(state)
    assert inspector.select.searching
    assert "300 classes — colours repeat" in view.legend.value and view.legend.value.count("width:10px") == 0
    state.selected_class = 7
    assert inspector.select.value == 7 and view.legend.value.count("width:10px") == 1
    inspector.select._search.value = inspector.select._labels_by_id[12]
    assert state.selected_class == 12


def test_large_maps_are_drawn_by_jupyter_scatter_with_the_same_colours_and_events(small_run, monkeypatch):
    from dmlviz.widgets import map_view
    from dmlviz.widgets.point_canvas import CENTER_SIZE, SAMPLE_SIZE

    state = ExplorerState(small_run)
    plotly_view = MapView(state)
    assert not plotly_view.large and plotly_view.plot_area.children == (plotly_view.figure,)
    monkeypatch.setattr(map_view, "LARGE_MAP_ABOVE", 100)  # the small run's 320 points count as many
    view = MapView(state)
    assert view.large and view.plot_area.children == (view.canvas.widget,)
    snap, rows = state.snapshot(), view._rows
    n, m = len(rows), snap.centers.shape[0] * snap.centers.shape[1]
    points = np.asarray(view.canvas.widget.points)
    assert points.shape == (n + m, 4) and points.dtype == np.float32
    assert np.abs(points[:, :2]).max() <= 1.0 and (points[:n, 3] == 0).all() and (points[n:, 3] == 1).all()
    assert list(view.canvas.widget.size) == [SAMPLE_SIZE, CENTER_SIZE]
    # each sample wears the colour the plotly map gives it, opacity included
    marker, opacity = plotly_view._colours(snap, rows)
    want = map_view._scale_lookup(np.asarray(marker["color"]), marker["colorscale"], marker["cmin"], marker["cmax"])
    table = np.asarray(view.canvas.widget.color)
    got = table[points[:n, 2].astype(int)]
    hexes = np.array([f"#{int(round(r * 255)):02x}{int(round(g * 255)):02x}{int(round(b * 255)):02x}" for r, g, b, _ in got])
    np.testing.assert_array_equal(hexes, want)
    np.testing.assert_allclose(got[:, 3], opacity)
    # one scale for both axes: the map keeps its aspect ratio
    layout = state.layout()
    xy = layout.points[rows]
    ratio = (points[:n, 0].max() - points[:n, 0].min()) / (points[:n, 1].max() - points[:n, 1].min())
    assert ratio == pytest.approx(np.ptp(xy[:, 0]) / np.ptp(xy[:, 1]), rel=1e-4)
    # hover, click and lasso land in the shared state; an index past the samples is a center
    view.canvas.widget.hovering = 3
    assert f"#{snap.ids[rows[3]]}" in view.hover.value
    view.canvas.widget.hovering = n + 1
    assert "center 1" in view.hover.value and "owns" in view.hover.value
    view.canvas.widget.selection = np.array([5])
    assert state.selected_sample == rows[5]
    assert len(view.canvas.widget.annotations) == len(state.highlighted) + 1  # neighbours ringed, and the sample itself
    view.canvas.widget.selection = np.array([n + 2])  # a center: its class goes to the class inspector
    assert state.selected_class == snap.center_classes[(n + 2 - n) // snap.centers.shape[1]]
    view.canvas.widget.selection = np.array([1, 2, 4])
    assert state.selection == [int(rows[i]) for i in (1, 2, 4)]
    colour_table = list(view.canvas.widget.color)
    # each draw is a version of the points; the page's report of one drawn tells the views beside the map (state.after_the_map)
    sent = state.map_sent
    assert sent == view.canvas.version >= 1 and state.map_shown < sent
    view.canvas.widget._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "dmlviz-redrawn", "version": sent, "how": "drawn"}}}, "buffers": []})
    assert state.map_shown == sent
    state.epoch = 1
    assert state.map_sent == sent + 1 and state.map_shown == sent  # not drawn yet
    view.canvas.widget._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "dmlviz-redrawn", "version": sent - 1, "how": "drawn"}}}, "buffers": []})
    assert state.map_shown == sent  # a late report of an older version changes nothing
    moved = np.asarray(view.canvas.widget.points)
    assert not np.array_equal(moved[:n, :2], points[:n, :2])
    # the looks are held from the first draw (centers faint or not): the switch sends positions, not a new colour table
    assert list(view.canvas.widget.color) == colour_table
    marker, opacity = plotly_view._colours(state.snapshot(), rows)
    table = np.asarray(view.canvas.widget.color)[moved[:n, 2].astype(int)]
    assert [f"#{int(round(r * 255)):02x}{int(round(g * 255)):02x}{int(round(b * 255)):02x}" for r, g, b, _ in table] == \
        list(map_view._scale_lookup(np.asarray(marker["color"]), marker["colorscale"], marker["cmin"], marker["cmax"]))
    np.testing.assert_allclose(table[:, 3], opacity)
    assert "Drawn by jupyter-scatter" in view.caption.value
    assert "are faint" in view.caption.value and "hollow" not in view.caption.value  # the canvas has no hollow symbols
    # one frame for every epoch: the map's coordinates map to the canvas by the same scale as before (or a larger one)
    later = state.layout().points[rows]
    scale_before = np.ptp(points[:n, 0]) / np.ptp(xy[:, 0])
    scale_now = np.ptp(moved[:n, 0]) / np.ptp(later[:, 0])
    assert scale_now <= scale_before * (1 + 1e-5)
    assert np.abs(moved[:, :2]).max() <= 1.0
    state.split = "test"  # 160 points: above the patched threshold still
    assert view.large and len(view.canvas.widget.points) == 160 + m
    monkeypatch.setattr(map_view, "LARGE_MAP_ABOVE", 200)
    state.split = "train"
    assert not view.large and view.plot_area.children == (view.figure,) and len(view.figure.data[0].x) == 160
    assert state.map_sent == 0  # plotly's map reports no redraws: the views beside it wait SECONDARY_DELAY instead


def test_distance_view_separates_pairs_after_training_and_not_before(small_run):
    from dmlviz.widgets.distance_view import DistanceView

    state = ExplorerState(small_run)
    view = DistanceView(state)
    levels, pos, neg = view.figure.data
    assert sum(pos.y) == pytest.approx(1.0) and sum(neg.y) == pytest.approx(1.0)
    overlap, auc = view.scores(3)
    overlap0, auc0 = view.scores(0)
    assert auc > auc0 and overlap < overlap0  # training separates the classes (SoftTriple, 3 epochs)
    assert "chance 0.5" in view.summary.value and f"{auc:.3f}" in view.summary.value
    assert levels.visible is False and view.figure.layout.yaxis2.domain == (0.0, 1.0)  # no MDR levels for SoftTriple
    state.split = "test"
    assert "held-out probe samples" in view.summary.value
    state.epoch = 0
    assert f"<b>{view.scores(0, 'test')[1]:.3f}</b>" in view.summary.value.split("·")[1]


def test_distance_view_draws_mdr_levels_in_their_units(small_synthetic, tmp_path):
    from dmlviz.widgets.distance_view import DistanceView

    run = dmlviz.train(small_synthetic, "linear", "triplet", regularizer="mdr", mining="distance", margin=0.2, scale="mean_distance",
                       epochs=2, batch_size=32, embedding_dim=8, split="samples", out=tmp_path / "mdr", progress=False)
    state = ExplorerState(run)
    view = DistanceView(state)
    levels = run.arrays(2, "mdr_levels")["mdr_levels"]
    drawn = sorted(s.x0 for s in view.figure.layout.shapes if s.yref == "y2 domain")
    np.testing.assert_allclose(drawn, np.sort(levels), rtol=1e-6)
    assert view.figure.data[0].visible is True and len([x for x in view.figure.data[0].x if x is not None]) == 3 * 3
    assert "MDR's units" in view.figure.layout.xaxis.title.text and "running mean" in view.how.value


def test_explorer_has_a_distances_tab(small_run):
    explorer = Explorer(small_run, watch=0)
    assert [explorer.side.get_title(i) for i in range(3)] == ["Neighbours", "Class inspector", "Distances"]


def test_the_distances_tab_measures_only_while_it_is_shown(small_run):
    """Hidden (the explorer opens on Neighbours), the Distances tab computes nothing, not on an epoch change either;
    selected, it measures the epoch shown then; hidden again, it stops following the epoch."""
    explorer = Explorer(small_run, watch=0)
    view = explorer.distances
    assert explorer.side.selected_index == 0 and not view.shown
    explorer.state.epoch = 1
    assert view._cache == {} and view._scores == {} and view.summary.value == ""
    assert list(view.figure.data[1].x or []) == []
    explorer.side.selected_index = 2
    assert view.shown and "epoch 1, all probe samples" in view.summary.value
    assert sum(view.figure.data[1].y) == pytest.approx(1.0) and sum(view.figure.data[2].y) == pytest.approx(1.0)
    measured = set(view._scores)
    explorer.side.selected_index = 0
    explorer.state.epoch = 2
    assert set(view._scores) == measured and "epoch 1," in view.summary.value  # nothing measured while hidden
    explorer.side.selected_index = 2
    assert "epoch 2, all probe samples" in view.summary.value


def test_the_map_draws_das_synthetic_points_on_request(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "multisimilarity", augmenter="das", das_num_scale=4, epochs=1, batch_size=32,
                       embedding_dim=8, split="samples", out=tmp_path / "das", progress=False)
    state = ExplorerState(run)
    view = MapView(state)
    assert view.synthetic_toggle.layout.display is None and len(view.figure.data[4].x) == 0  # offered, off
    view.synthetic_toggle.value = True
    assert len(view.figure.data[4].x) == 900
    assert "900 synthetic points" in view.synthetic_note.value and "k-NN preservation of the synthetic points" in view.synthetic_note.value
    state.split = "test"
    assert 0 < len(view.figure.data[4].x) < 900  # only those whose source is drawn
    other = MapView(ExplorerState(dmlviz.train(small_synthetic, "linear", "multisimilarity", epochs=1, batch_size=32, embedding_dim=8,
                                               split="samples", out=tmp_path / "plain", progress=False)))
    assert other.synthetic_toggle.layout.display == "none"


def test_the_map_draws_iaa_points_from_its_start_and_says_why_none_before(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "multisimilarity", augmenter="iaa", iaa_start=0.5, epochs=2, batch_size=32,
                       embedding_dim=8, split="samples", out=tmp_path / "iaa", progress=False)
    state = ExplorerState(run)
    view = MapView(state)
    view.synthetic_toggle.value = True
    assert len(view.figure.data[4].x) == 900 and "(IAA, 3 per source" in view.synthetic_note.value  # epoch 2: augmenting
    state.epoch = 1
    assert len(view.figure.data[4].x) == 0 and "IAA augments from epoch 2 on" in view.synthetic_note.value


def test_the_class_inspector_shows_the_margin_losss_learned_beta(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "margin", epochs=2, batch_size=32, embedding_dim=8, split="samples",
                       out=tmp_path / "margin", progress=False)
    state = ExplorerState(run)
    view = ClassInspector(state)
    state.selected_class = 1
    beta = run.arrays(2, "margin_beta")["margin_beta"][1]
    assert f"β = {beta:.3f}</b> (epoch 0: 1.200)" in view.summary.value



def test_a_ccp_run_shows_its_reseeding_on_the_map_and_its_covering_radius_in_the_class_inspector(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "ccp", proxies_per_class=2, pool_size=4, patience=1, epochs=3, batch_size=32,
                       embedding_dim=8, split="samples", out=tmp_path / "ccp", progress=False, lr=1e-9, center_lr=1e-9)
    state = ExplorerState(run)
    view = MapView(state)
    state.epoch = 1  # seeded from samples as training began: the random proxies of epoch 0 are the crosses
    assert len(view.figure.data[5].x) == 4 * 2 and "seeded from samples when training began" in view.reseed_note.value
    assert "k-NN preservation of the crosses" in view.reseed_note.value
    state.epoch = 2
    assert len(view.figure.data[5].x) == 0 and view.reseed_note.value == ""
    state.epoch = 3
    assert len(view.figure.data[5].x) == 8 and "problem instance 1" in view.reseed_note.value
    inspector = ClassInspector(state)
    state.selected_class = int(run.probe["train_classes"][0])
    assert "covering radius <b>" in inspector.summary.value and "(epoch 1:" in inspector.summary.value
    state.epoch = 0
    assert "not measured yet" in inspector.summary.value


def test_an_nivmf_run_shows_its_proxy_concentration_in_the_class_inspector(small_synthetic, tmp_path):
    run = dmlviz.train(small_synthetic, "linear", "nivmf", epochs=1, batch_size=32, embedding_dim=8, split="samples",
                       out=tmp_path / "nivmf", progress=False)
    state = ExplorerState(run)
    inspector = ClassInspector(state)
    state.selected_class = int(run.probe["train_classes"][0])
    assert "proxy concentration <b>‖κ⊙μ‖ = " in inspector.summary.value and "(1 = isotropic)" in inspector.summary.value
    assert "around its mode κ⊙μ as a vMF" in inspector.summary.value and "from the drawn direction μ" in inspector.summary.value
