"""The playground widget without a browser: controls rebuild the session, play runs in a thread, presets apply."""

import time

import numpy as np

from dmlviz.widgets import Playground


def test_a_step_redraws_the_points_and_the_stats():
    pg = Playground()
    before = np.array(pg.figure.data[1].x)
    pg.step(3)
    assert not np.allclose(np.array(pg.figure.data[1].x), before)
    assert "step <b>3</b>" in pg.stats.value and "mode gap" in pg.stats.value and "seed 0" in pg.stats.value
    assert len(pg.figure.data[2].x) == 3 * len(pg.session.frame().batch)  # one arrow (2 points and a gap) per batch sample
    pg.forces.value = False
    assert len(pg.figure.data[2].x) == 0


def test_controls_rebuild_the_session_and_show_the_losss_formula_and_knobs():
    pg = Playground()
    pg.loss.value = "triplet"
    assert pg.session.settings.loss == "triplet" and "margin" in pg._knob_widgets and "[d(a,p) − d(a,n) + margin]₊" in pg.formula.value
    pg._knob_widgets["mining"].value = "hard"
    assert pg.session.loss_fn.hparams["mining"] == "hard"
    pg.dim.value = 3
    assert pg.plot_area.children[0] is pg.figure3d and len(pg.figure3d.data[1].z) == len(pg.session.inputs)
    pg.mdr.value = True
    assert pg.session.loss_fn.name == "triplet+mdr"
    pg.lr.value = 0.002
    assert pg.session.optimizer.param_groups[0]["lr"] == 0.002
    pg.classes.value = 1  # refused: the session stays, the error is shown
    assert "classes must be at least 2" in pg.error.value or pg.session.settings.classes >= 2


def test_play_trains_in_a_background_thread_and_close_stops_it():
    pg = Playground(fps=30)
    pg.toggle_play()
    time.sleep(1.5)
    assert pg.session.step_count > 4 and pg.play_button.description == "pause"
    pg.close()
    time.sleep(0.3)
    steps = pg.session.step_count
    time.sleep(0.5)
    assert pg.session.step_count == steps and not pg._thread.is_alive()


def test_a_preset_sets_the_controls_and_its_lesson():
    pg = Playground()
    pg.preset.value = 1
    assert pg.loss.value == "softtriple" and pg._knob_widgets["centers_per_class"].value == 2 and pg.head.value == "linear"
    assert "two centers per class" in pg.lesson.value and "(about 600 steps)" in pg.lesson.value
    assert pg.session.settings.loss_params == {"centers_per_class": 2}


def test_recording_trains_the_settings_into_a_run(tmp_path):
    pg = Playground(runs_dir=tmp_path)
    pg.record_epochs.value = 2
    pg.record()
    deadline = time.time() + 60
    while pg.record_button.disabled and time.time() < deadline:
        time.sleep(0.2)
    assert "open it in the explorer" in pg.record_status.value, pg.record_status.value
    import dmlviz

    (folder,) = list(tmp_path.iterdir())
    run = dmlviz.load_run(folder)
    assert run.config["loss"] == "softtriple" and run.config["embedding_dim"] == 2 and run.epochs == [0, 1, 2]


def test_play_pauses_when_the_last_view_closes():
    pg = Playground(fps=30)
    pg.watch._message(None, {"event": "open"}, None)
    pg.watch._message(None, {"event": "open"}, None)  # two views (e.g. the same output in two tabs)
    pg.toggle_play()
    time.sleep(0.5)
    pg.watch._message(None, {"event": "close"}, None)
    time.sleep(0.3)
    assert pg._playing.is_set()  # one view is left
    pg.watch._message(None, {"event": "close"}, None)
    time.sleep(0.5)
    assert not pg._playing.is_set() and not pg._thread.is_alive()
