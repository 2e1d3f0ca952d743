"""The shared state's scheduling: views beside the map update after it, their heavy part in a worker thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dmlviz.widgets import state as state_module
from dmlviz.widgets.state import after_the_map, once_the_map_is_drawn


def test_outside_a_kernel_the_update_runs_at_once():
    calls = []
    after_the_map(lambda: calls.append("update"), lambda: calls.append("prepare"))()
    assert calls == ["update"]  # nothing to keep responsive: no worker, no delay


def _in_a_kernel(monkeypatch, body) -> int:
    """Run ``body(loop)`` (a coroutine function) with ``kernel_loop()`` answering that running loop, as in a kernel.

    The loop runs in a thread of its own: the test session's thread may hold a running loop already
    (Playwright's sync API keeps one). Returns that thread's ident (the "kernel's thread").
    """
    monkeypatch.setattr(state_module, "SECONDARY_DELAY", 0.05)
    ident, failure = [], []

    async def main():
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(state_module, "kernel_loop", lambda: loop)
        await body(loop)

    def run():
        ident.append(threading.get_ident())
        try:
            asyncio.run(main())
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            failure.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the kernel's loop did not finish"
    if failure:
        raise failure[0]
    return ident[0]


def test_in_a_kernel_prepare_runs_in_a_worker_and_the_update_after_it_on_the_kernel_thread(monkeypatch):
    seen = []

    async def body(loop):
        done = asyncio.Event()
        observer = after_the_map(lambda: (seen.append(("update", threading.get_ident())), done.set()),
                                 lambda: seen.append(("prepare", threading.get_ident())))
        observer({"new": 1})
        assert seen == []  # the map's message goes first
        await asyncio.wait_for(done.wait(), 10)

    kernel = _in_a_kernel(monkeypatch, body)
    assert [what for what, _ in seen] == ["prepare", "update"]
    assert seen[0][1] != kernel and seen[1][1] == kernel  # prepared in the worker, updated on the kernel's thread


def test_in_a_kernel_a_superseded_change_is_dropped(monkeypatch):
    updates, prepares = [], []

    async def body(loop):
        observer = after_the_map(lambda: updates.append(1), lambda: prepares.append(1))
        for epoch in range(5):  # five quick epoch switches (the play button, a held arrow key)
            observer({"new": epoch})
        await asyncio.sleep(0.5)

    _in_a_kernel(monkeypatch, body)
    assert updates == [1] and prepares == [1]  # the last one shows the current state; the others did no work


def test_in_a_kernel_a_failed_prepare_still_updates(monkeypatch, caplog):
    updates = []

    def prepare():
        raise RuntimeError("no such epoch")

    async def body(loop):
        after_the_map(lambda: updates.append(1), prepare)({"new": 1})
        await asyncio.sleep(0.5)

    with caplog.at_level("WARNING"):
        _in_a_kernel(monkeypatch, body)
    assert updates == [1]  # the update meets the error itself and shows it where the view shows errors
    assert "no such epoch" in caplog.text


@pytest.mark.parametrize("view", ["neighbors", "distances"])
def test_views_prepare_what_their_update_reads(small_run, monkeypatch, view):
    """The worker's part fills the caches the update reads: after it, the update computes no neighbours or distances."""
    from dmlviz.widgets import distance_view
    from dmlviz.widgets.distance_view import DistanceView
    from dmlviz.widgets.neighbors_view import NeighborsView
    from dmlviz.widgets.state import ExplorerState

    state = ExplorerState(small_run)
    widget = NeighborsView(state) if view == "neighbors" else DistanceView(state)
    module, name = (state_module, "_knn_in_pool") if view == "neighbors" else (distance_view, "pair_distances")
    heavy, calls = getattr(module, name), []
    monkeypatch.setattr(module, name, lambda *a, **k: (calls.append(1), heavy(*a, **k))[1])
    target = state.epochs[1]  # neither the first epoch (the distances' baseline) nor the current one: not computed yet
    assert len(state.epochs) > 2 and state.epoch != target
    # a kernel whose loop never gets round to the scheduled update: the switch itself computes nothing for these views
    monkeypatch.setattr(state_module, "kernel_loop", lambda: type("Loop", (), {"call_later": lambda self, *a: None,
                                                                              "call_soon": lambda self, *a: None})())
    state.epoch = target
    assert calls == []
    (widget._prepare_worst if view == "neighbors" else widget._prepare)()
    assert calls  # the worker's part did the work
    calls.clear()
    (widget.refresh_worst if view == "neighbors" else widget.refresh)()
    assert calls == []
    if view == "neighbors":
        assert widget.worst.options and all(" → nearest is " in label for label, _ in widget.worst.options)


def test_in_a_kernel_a_first_update_waits_until_the_map_is_drawn(monkeypatch):
    from dmlviz.widgets.state import ExplorerState

    state, calls = ExplorerState(), []

    async def body(loop):
        once_the_map_is_drawn(state, lambda: calls.append("update"), lambda: calls.append("prepare"))
        await asyncio.sleep(0.3)
        assert calls == []  # the page has not drawn the map yet
        monkeypatch.setattr(state_module, "SECONDARY_DELAY", 5.0)  # the page's report is itself "after the map": no delay more
        state.map_drawn = True
        for _ in range(40):  # 2 s at most
            if "update" in calls:
                break
            await asyncio.sleep(0.05)
        assert "update" in calls, "the first update waited after the page had drawn the map"
        state.map_drawn = False  # (not something the map does; nothing runs twice)
        state.map_drawn = True
        await asyncio.sleep(0.3)

    _in_a_kernel(monkeypatch, body)
    assert calls == ["prepare", "update"]


def test_in_a_kernel_a_first_update_waits_for_the_map_a_limited_time(monkeypatch):
    from dmlviz.widgets.state import ExplorerState

    monkeypatch.setattr(state_module, "FIRST_DRAW_LIMIT", 0.2)
    state, calls = ExplorerState(), []

    async def body(loop):
        once_the_map_is_drawn(state, lambda: calls.append("update"))
        await asyncio.sleep(1.0)  # no page reports the map drawn (never shown, or a page too busy)
        state.map_drawn = True  # a late report starts nothing again

    _in_a_kernel(monkeypatch, body)
    assert calls == ["update"]


def test_beside_a_large_map_an_epochs_update_waits_until_its_page_has_drawn_the_points_sent(monkeypatch):
    from dmlviz.widgets.state import ExplorerState

    state, calls = ExplorerState(), []

    async def body(loop):
        monkeypatch.setattr(state_module, "SECONDARY_DELAY", 5.0)  # a large map's views wait for its page, not for this
        state.map_sent, state.map_shown = 3, 2
        after_the_map(lambda: calls.append("update"), lambda: calls.append("prepare"), state=state)({"new": 1})
        state.map_sent = 4  # the map's own observer may run after this one: what counts is what it has sent by then
        await asyncio.sleep(0.3)
        assert calls == []
        state.map_shown = 3  # an earlier version drawn: still waiting
        await asyncio.sleep(0.2)
        assert calls == []
        state.map_shown = 4
        for _ in range(40):
            if "update" in calls:
                break
            await asyncio.sleep(0.05)
        assert calls == ["prepare", "update"]
        state.map_shown = 5  # nothing runs twice
        await asyncio.sleep(0.2)

    _in_a_kernel(monkeypatch, body)
    assert calls == ["prepare", "update"]


def test_beside_a_large_map_an_epochs_update_waits_for_its_page_a_limited_time(monkeypatch):
    from dmlviz.widgets.state import ExplorerState

    monkeypatch.setattr(state_module, "REDRAW_LIMIT", 0.2)
    state, calls = ExplorerState(), []

    async def body(loop):
        monkeypatch.setattr(state_module, "SECONDARY_DELAY", 5.0)
        state.map_sent = 7  # no page reports it (none shows the map, or it is too busy)
        after_the_map(lambda: calls.append("update"), state=state)({"new": 1})
        await asyncio.sleep(0.8)
        state.map_shown = 7  # a late report starts nothing again
        await asyncio.sleep(0.1)

    _in_a_kernel(monkeypatch, body)
    assert calls == ["update"]


def test_beside_a_large_map_already_drawn_or_a_plotly_map_the_update_follows_soon_or_after_the_delay(monkeypatch):
    from dmlviz.widgets.state import ExplorerState

    drawn, plotly, calls = ExplorerState(), ExplorerState(), []

    async def body(loop):
        drawn.map_sent = drawn.map_shown = 2  # the points did not change (nothing new for the page to draw)
        after_the_map(lambda: calls.append("drawn"), state=drawn)({"new": 1})
        after_the_map(lambda: calls.append("plotly"), state=plotly)({"new": 1})  # map_sent 0: plotly reports no redraws
        await asyncio.sleep(0.02)
        assert calls == ["drawn"]  # SECONDARY_DELAY is 0.05 s in these tests
        await asyncio.sleep(0.3)

    _in_a_kernel(monkeypatch, body)
    assert calls == ["drawn", "plotly"]


def test_outside_a_kernel_or_once_the_map_is_drawn_a_first_update_does_not_wait():
    from dmlviz.widgets.state import ExplorerState

    calls = []
    once_the_map_is_drawn(ExplorerState(), lambda: calls.append("update"))
    assert calls == ["update"]


def test_views_beside_a_large_map_start_their_heavy_work_once_it_is_drawn(small_run, monkeypatch):
    """In a kernel, with the map not yet drawn, building the neighbours and distances views computes no neighbours or distances."""
    from dmlviz.widgets import distance_view
    from dmlviz.widgets.distance_view import DistanceView
    from dmlviz.widgets.neighbors_view import NeighborsView
    from dmlviz.widgets.state import ExplorerState

    calls = []
    for module, name in ((state_module, "_knn_in_pool"), (distance_view, "pair_distances")):
        heavy = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _heavy=heavy, _name=name, **k: (calls.append(_name), _heavy(*a, **k))[1])
    views = {}

    async def body(loop):
        state = ExplorerState(small_run)  # no map: as a large map whose page has not drawn it
        views["neighbors"], views["distances"] = NeighborsView(state), DistanceView(state)
        await asyncio.sleep(0.3)
        assert calls == []
        state.map_drawn = True
        for _ in range(200):
            if views["neighbors"].worst.options and "overlap" in views["distances"].summary.value:
                break
            await asyncio.sleep(0.05)

    _in_a_kernel(monkeypatch, body)
    assert {"_knn_in_pool", "pair_distances"} <= set(calls)
    assert views["neighbors"].worst.options and "separation AUC" in views["distances"].summary.value
