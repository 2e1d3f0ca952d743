"""Class inspector: a class's centers, how many samples each owns, the sub-modes they hold."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from ..eval.centers import center_groups, effective_k, submode_score
from .class_picker import ClassPicker
from .colors import palette
from .figure import FigureWidget, plotly_code, resync_on_render
from .state import ExplorerState
from .thumbs import gallery, tile


class ClassInspector(widgets.VBox):
    """Pick a class: its centers with the samples each owns, a gallery of each center's owned samples
    most similar to it, the class's sub-mode score against the fine labels when known (0 = chance),
    and a center-to-center similarity heatmap."""

    def __init__(self, state: ExplorerState, per_center: int = 6) -> None:
        self.state, self.per_center = state, per_center
        self.select = ClassPicker("class")
        self.select.add_class("dmlviz-class-select")
        self.summary = widgets.HTML()
        self.galleries = widgets.HTML()
        self.galleries.add_class("dmlviz-center-galleries")
        self.heatmap: Any = go.Figure(
            data=[go.Heatmap(z=[[0]], colorscale="Viridis", zmin=-1, zmax=1, colorbar=dict(title="cos", thickness=10))],
            layout=go.Layout(height=260, width=300, margin=dict(l=30, r=10, t=30, b=30), title=dict(text="center-to-center cosine", font=dict(size=12))),
        )
        self.select.observe(self._on_select, "value")
        state.observe(self._on_run, "run")
        state.observe(lambda c: self.refresh(), ["selected_class", "epoch", "eps"])
        self._on_run()  # the first frame goes into the figure the widget is made from (see figure.py)
        self.heatmap = FigureWidget(self.heatmap)
        resync_on_render(self.heatmap, self.refresh)
        super().__init__([plotly_code(), self.select, self.summary, self.galleries, self.heatmap])
        self.add_class("dmlviz-class-inspector")

    def _on_run(self, change: Any = None) -> None:
        state = self.state
        if state.run is None or not state.epochs:
            self.select.set_classes([], [])
            self.refresh()
            return
        snap = state.snapshot()
        present = np.unique(snap.labels)
        self.select.set_classes(present, [snap.class_names[c] for c in present])
        self.select.value = state.selected_class if state.selected_class in present else -1
        self.refresh()

    def _loss_row(self, cls: int, epoch: int, loss: str, key: str) -> tuple[Any, int] | None:
        """(run, row of ``cls`` among its training classes) when the run's loss is ``loss`` and epoch ``epoch`` recorded ``key``."""
        run = self.state.run
        if run is None or run.config.get("loss") != loss or key not in run.array_names(epoch):
            return None
        where = _train_row(run, cls)
        return None if where < 0 else (run, where)

    def _beta_text(self, cls: int, epoch: int) -> str:
        """For a margin-loss run, the class's learned boundary β at ``epoch`` and at epoch 0."""
        found = self._loss_row(cls, epoch, "margin", "margin_beta")
        if found is None:
            return ""
        run, where = found
        beta = float(run.arrays(epoch, "margin_beta")["margin_beta"][where])
        first = run.epochs[0]
        start = float(run.arrays(first, "margin_beta")["margin_beta"][where]) if "margin_beta" in run.array_names(first) else float("nan")
        alpha = float((run.config.get("loss_params") or {}).get("margin", 0.2))
        return (f" · learned boundary <b>β = {beta:.3f}</b> (epoch {first}: {start:.3f}): its positive pairs closer than β − α = "
                f"{beta - alpha:.3f} and negative pairs farther than β + α = {beta + alpha:.3f} (unit-vector distances) cost nothing")

    def _covering_text(self, cls: int, epoch: int) -> str:
        """For a CCP run, the class's covering radius at ``epoch`` (and at its first measured epoch): the paper's quantity."""
        found = self._loss_row(cls, epoch, "ccp", "ccp_covering_radius")
        if found is None:
            return ""
        run, where = found
        radius = float(run.arrays(epoch, "ccp_covering_radius")["ccp_covering_radius"][where])
        if not np.isfinite(radius):
            return " · covering radius: not measured yet (CCP measures it on the training set when an epoch begins)"
        first = next((e for e in run.epochs if "ccp_covering_radius" in run.array_names(e)
                      and np.isfinite(run.arrays(e, "ccp_covering_radius")["ccp_covering_radius"][where])), epoch)
        start = float(run.arrays(first, "ccp_covering_radius")["ccp_covering_radius"][where])
        return (f" · covering radius <b>{radius:.3f}</b> (epoch {first}: {start:.3f}): the farthest any training sample of the class "
                "lies from its nearest proxy of the class when this epoch began (unit-ball distances; CCP's bound shrinks with it)")

    def _concentration_text(self, cls: int, epoch: int) -> str:
        """For an EL-nivMF run, the class proxy's concentration and anisotropy at ``epoch`` and at the first epoch."""
        found = self._loss_row(cls, epoch, "nivmf", "nivmf_concentration")
        if found is None:
            return ""
        run, where = found
        names = [k for k in ("nivmf_concentration", "nivmf_anisotropy", "nivmf_tilt") if k in run.array_names(epoch)]
        now = run.arrays(epoch, *names)
        first = run.epochs[0]
        start = run.arrays(first, "nivmf_concentration")["nivmf_concentration"][where]
        n = float(now["nivmf_concentration"][where])
        tilt = f", and tilt its mode {float(now['nivmf_tilt'][where]):.1f}° from the drawn direction μ" if "nivmf_tilt" in now else ""
        return (f" · proxy concentration <b>‖κ⊙μ‖ = {n:.2f}</b> (epoch {first}: {float(start):.2f}): its likelihood falls off around "
                f"its mode κ⊙μ as a vMF of that concentration (per tangent direction an angular s.d. of about 1/√{n:.1f} = "
                f"{1 / np.sqrt(max(n, 1e-12)):.2f} rad when it is large); the per-dimension κ span "
                f"×{float(now['nivmf_anisotropy'][where]):.2f} (1 = isotropic){tilt}. An image's certainty is its embedding norm")

    def _on_select(self, change: Any) -> None:
        self.state.selected_class = int(change["new"])

    def refresh(self) -> None:
        """Redraw for the selected class at the current epoch."""
        state = self.state
        cls = state.selected_class
        if self.select.value != cls and cls in self.select._labels_by_id:
            self.select.value = cls
        if state.run is None or not state.epochs or cls < 0:
            self.summary.value = '<div style="color:#888">Pick a class to see its centers and the sub-modes they hold.</div>'
            self.galleries.value = ""
            self.heatmap.data[0].z = [[None]]
            return
        snap = state.snapshot()
        name = html.escape(snap.class_names[cls])
        members = np.flatnonzero(snap.labels == cls)
        where = np.flatnonzero(snap.center_classes == cls)
        if not len(where):
            self.summary.value = (
                f"<b>class {name}</b>: {len(members)} samples, <b>no centers</b> — it was not in the training split "
                "(zero-shot test class), so no center of the loss belongs to it."
            )
            self.galleries.value = ""
            self.heatmap.data[0].z = [[None]]
            return
        centers = snap.centers[where[0]]  # [K, D]
        kind = snap.centers_kind
        k = len(centers)
        assigned = snap.assignments[members]
        counts = np.bincount(assigned[assigned >= 0], minlength=k)
        eff = int(effective_k(centers[None], eps=state.eps)[0]) if kind == "learned" else 1
        submode_text = ""
        if snap.fine_labels is not None:
            merged = np.where(assigned >= 0, center_groups(centers[None], eps=state.eps)[0][np.maximum(assigned, 0)], -1)
            score = submode_score(snap.labels[members], snap.fine_labels[members], merged)
            shown = f"{score:.2f}" if score == score else "— (one fine label)"
            submode_text = (
                f" · sub-mode score <b>{shown}</b> (how well its centers split it along the hidden fine labels: "
                "0 = no better than chance, 1 = one center per fine label; merged centers count as one)"
            )
        what = "learned centers" if kind == "learned" else "class mean (this loss has no centers; the mean of the class's embeddings stands in)"
        self.summary.value = (
            f'<div class="dmlviz-class-summary"><b>class {name}</b>, epoch {snap.epoch}: {len(members)} samples, {k} {what}; '
            f"effective K <b>{eff}</b> (ε = {state.eps:g}){submode_text}{self._beta_text(cls, snap.epoch)}{self._covering_text(cls, snap.epoch)}{self._concentration_text(cls, snap.epoch)}</div>"
        )
        colour = palette(len(snap.class_names))[cls]
        blocks = []
        for j in np.argsort(-counts, kind="stable"):
            owned = members[assigned == j]
            if len(owned):
                sims = snap.embeddings[owned] @ centers[j]
                nearest = owned[np.argsort(-sims, kind="stable")[: self.per_center]]
            else:
                nearest = np.array([], dtype=np.int64)
            tiles = []
            for r in nearest:
                caption = (snap.fine_names[snap.fine_labels[r]] if snap.fine_names else str(snap.fine_labels[r])) if snap.fine_labels is not None else f"#{snap.ids[r]}"
                image = snap.thumbnails[r] if snap.thumbnails is not None else None
                tiles.append(tile(snap.class_names[cls], image=image, colour=colour, caption=caption, size=40, row=int(r)))
            fine_note = ""
            if snap.fine_labels is not None and len(owned):
                values, freq = np.unique(snap.fine_labels[owned], return_counts=True)
                top = values[np.argmax(freq)]
                top_name = snap.fine_names[top] if snap.fine_names else str(top)
                share = float(np.mean(snap.fine_labels[members] == top))
                fine_note = (
                    f" · mostly <b>{html.escape(str(top_name))}</b> ({freq.max() / len(owned):.0%}; "
                    f"{share:.0%} of the class, the share a center picking samples at random would hold)"
                )
            shown_note = f" · the {len(nearest)} it owns most similar to it" if len(owned) else ""
            blocks.append(
                f'<div class="dmlviz-center-gallery" style="margin:4px 0"><div style="font-size:12px">center {j}: owns <b>{counts[j]}</b> probe samples{fine_note}{shown_note}</div>'
                f"{gallery(tiles, empty='owns no samples (a redundant center)')}</div>"
            )
        # no inner scroll box: a gallery cut at the box's bottom edge read as blank thumbnails
        self.galleries.value = f"<div>{''.join(blocks)}</div>"
        sim = centers @ centers.T
        with self.heatmap.batch_update():
            self.heatmap.data[0].z = sim
            self.heatmap.data[0].x = list(range(k))
            self.heatmap.data[0].y = list(range(k))


def _train_row(run: Any, cls: int) -> int:
    """The row of class ``cls`` among the run's training classes (per-class arrays of the loss), or -1 for a test class."""
    train = np.asarray(run.probe["train_classes"])
    where = int(np.searchsorted(train, cls))
    return where if where < len(train) and train[where] == cls else -1
