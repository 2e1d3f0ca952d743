"""Compare: several runs on the same data, split, seed and probe, side by side on one epoch and one selection.

Each run's map is registered to the first run's (a similarity transform fitted on the shared
probe samples, :mod:`dmlviz.projection.registration`), so a sample sits in comparable places;
the epoch, the layout method, the split, the colouring, the clicked sample, the picked class and
the lasso selection are shared; a table lists every run's metrics at that epoch, best marked.
"""

from __future__ import annotations

import dataclasses
import html
import os
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
import traitlets

from ..projection.registration import IDENTITY, Similarity, fit_similarity
from ..runs import Run, load_run
from .map_view import MapView
from .state import ExplorerState

#: metrics in the table: column → (label, higher is better?)
COLUMNS = {
    "recall@1": ("R@1", True),
    "recall@4": ("R@4", True),
    "map@r": ("MAP@R", True),
    "r_precision": ("R-prec.", True),
    "ndcg@8": ("nDCG@8", True),
    "nmi": ("NMI", True),
    "submode_score": ("sub-mode", True),
    "effective_k": ("eff. K", None),
}
#: state traits every map of a comparison shares
SHARED = ("epoch", "layout_method", "split", "color_by", "selected_sample", "selected_class", "selection")


class RegisteredState(ExplorerState):
    """An ExplorerState whose layouts are registered onto those of ``reference`` (same probe samples)."""

    def __init__(self, run: Run, reference: ExplorerState, **kwargs: Any) -> None:
        self.reference = reference
        self._transforms: dict[tuple, Similarity] = {}
        super().__init__(run, **kwargs)
        reference.observe(lambda c: setattr(self, "layout_version", self.layout_version + 1), "layout_version")

    def transform(self, epoch: int | None = None) -> Similarity:
        """The similarity transform of ``epoch``'s layout onto the reference's."""
        epoch = self.epoch if epoch is None else int(epoch)
        ref_epochs = self.reference.epochs or [epoch]
        ref_epoch = min(ref_epochs, key=lambda e: (abs(e - epoch), e))  # runs may have recorded different epochs
        own, ref = super().layout(epoch), self.reference.layout(ref_epoch)
        key = (epoch, own.method, ref.method, id(own), id(ref))
        if key not in self._transforms:
            self._transforms = {k: v for k, v in self._transforms.items() if k[0] != epoch}
            self._transforms[key] = fit_similarity(own.points, ref.points) if len(own.points) == len(ref.points) else IDENTITY
        return self._transforms[key]

    def layout(self, epoch: int | None = None) -> Any:
        """The layout of ``epoch`` moved onto the reference run's (points and centers alike)."""
        epoch = self.epoch if epoch is None else int(epoch)
        own = super().layout(epoch)
        t = self.transform(epoch)
        return dataclasses.replace(own, points=t.apply(own.points), centers=t.apply(own.centers) if own.centers.size else own.centers)


def check_comparable(runs: Sequence[Run]) -> None:
    """Raise ValueError unless every run has the first one's probe (same samples, same order)."""
    if len(runs) < 2:
        raise ValueError(f"a comparison needs at least 2 runs, got {len(runs)}")
    first = runs[0]
    ids, split = first.probe["ids"], first.probe["split"]
    for run in runs[1:]:
        if not (np.array_equal(run.probe["ids"], ids) and np.array_equal(run.probe["split"], split)):
            differs = [k for k in ("dataset", "split", "seed", "probe_size", "test_fraction") if run.config.get(k) != first.config.get(k)]
            why = ", ".join(f"{k}: {first.config.get(k)!r} vs {run.config.get(k)!r}" for k in differs) or "the probe samples or their split differ"
            raise ValueError(
                f"runs {first.name!r} and {run.name!r} do not share their probe ({why}); compare runs trained on the same "
                "dataset, split, seed and probe_size (dmlviz compare trains such a grid)"
            )


def _label(run: Run) -> str:
    cfg = run.config
    name = str(cfg.get("loss"))
    if cfg.get("augmenter"):
        name += f" + {str(cfg['augmenter']).upper()}"
    if cfg.get("regularizer"):
        name += f" + {str(cfg['regularizer']).upper()}"
    return name


class Compare(widgets.VBox):
    """Runs side by side: ``Compare([run_a, run_b, ...])`` (Runs or paths), maps registered to the first run's."""

    def __init__(self, runs: Sequence[Run | str | os.PathLike], *, layout: str = "pca", columns: int = 2, map_height: int = 380,
                 map_width: int = 440) -> None:
        self.runs = [r if isinstance(r, Run) else load_run(r) for r in runs]
        check_comparable(self.runs)
        reference = ExplorerState(self.runs[0])
        self.states: list[ExplorerState] = [reference] + [RegisteredState(r, reference) for r in self.runs[1:]]
        for state in self.states[1:]:
            for name in SHARED:
                traitlets.link((reference, name), (state, name))
        # a fixed width: a figure drawn before its grid cell has a width takes plotly's 700 px and keeps it (JupyterLab)
        self.maps = [MapView(state, height=map_height, width=map_width) for state in self.states]
        self.titles = [widgets.HTML() for _ in self.states]
        cells = [widgets.VBox([title, view], layout=widgets.Layout(border="1px solid #ddd", padding="4px"))
                 for title, view in zip(self.titles, self.maps)]
        self.grid = widgets.GridBox(cells, layout=widgets.Layout(grid_template_columns=f"repeat({int(columns)}, minmax(0, 1fr))", grid_gap="8px"))
        self.table = widgets.HTML()
        self.table.add_class("dmlviz-compare-table")
        header = widgets.HTML(
            f'<div style="font-size:16px;font-weight:600">{len(self.runs)} runs compared</div>'
            '<div style="font-size:12px;color:#555">Same data, split, seed and probe. Each map is registered to the first '
            "one's (rotation or reflection, one scale, a shift, least squares on every probe sample: the map is not bent, "
            "its k-NN preservation is its own); the residual says how far samples remain from their place in the first map "
            "(0 = the same map, about 1 = unrelated). One epoch, one selection: a click or a lasso in one map shows in all.</div>"
        )
        super().__init__([header, self.table, self.grid], layout=widgets.Layout(width="100%"))
        self.add_class("dmlviz-compare")
        reference.observe(lambda c: self.refresh(), ["epoch", "layout_version", "layout_method"])
        reference.layout_method = layout
        self.refresh()

    def refresh(self) -> None:
        """Redraw the titles (registration residuals) and the metrics table for the shared epoch."""
        epoch = self.states[0].epoch
        for i, (state, title) in enumerate(zip(self.states, self.titles)):
            run = state.run
            params = ", ".join(f"{k}={v}" for k, v in (run.config.get("loss_params") or {}).items())
            if i == 0:
                how = "the reference map"
            else:
                how = f"registered to {html.escape(self.runs[0].name)}: residual {state.transform(state.epoch).residual:.2f}"
            title.value = (f'<div><b>{html.escape(_label(run))}</b> <span style="color:#555;font-size:11px">{html.escape(run.name)}'
                           f', epoch {state.epoch}</span><br><span style="font-size:11px;color:#555">{html.escape(params)} · {how}</span></div>')
        self.table.value = self.metrics_table(epoch)

    def metrics_rows(self, epoch: int) -> list[dict[str, Any]]:
        """Per run: {"run", "label", "epoch", column: value} at ``epoch`` (the run's nearest recorded one)."""
        rows = []
        for run in self.runs:
            table = run.metrics
            if table is None or not len(table):
                rows.append({"run": run.name, "label": _label(run), "epoch": None})
                continue
            at = table.iloc[int(np.argmin(np.abs(table["epoch"].to_numpy() - epoch)))]
            rows.append({"run": run.name, "label": _label(run), "epoch": int(at["epoch"]),
                         **{c: float(at[c]) for c in COLUMNS if c in at and at[c] == at[c]}})
        return rows

    def metrics_table(self, epoch: int) -> str:
        """An HTML table of every run's metrics at ``epoch``, the best of each column in bold with ★, and baselines."""
        rows = self.metrics_rows(epoch)
        shown = [c for c in COLUMNS if any(c in r for r in rows)]
        best = {c: max(r[c] for r in rows if c in r) for c in shown if COLUMNS[c][1]}
        head = "".join(f"<th style='padding:2px 8px'>{COLUMNS[c][0]}</th>" for c in shown)
        body = []
        for r in rows:
            cells = []
            for c in shown:
                if c not in r:
                    cells.append("<td>–</td>")
                    continue
                mark = COLUMNS[c][1] and len(rows) > 1 and np.isclose(r[c], best[c], rtol=0, atol=5e-4)
                text = f"{r[c]:.3f}" if c != "effective_k" else f"{r[c]:.2f}"
                star = "<b>★</b>" if mark else "<span style='visibility:hidden'>★</span>"  # kept in every cell: digits line up
                cells.append(f"<td style='padding:2px 8px;text-align:right'>{'<b>' + text + '</b>' if mark else text}&nbsp;{star}</td>")
            body.append(f"<tr><td style='padding:2px 8px'>{html.escape(r['label'])} <span style='color:#777'>({html.escape(r['run'])})</span></td>"
                        f"<td style='text-align:right'>{r['epoch'] if r['epoch'] is not None else '–'}</td>{''.join(cells)}</tr>")
        base = self._baselines(shown)
        return (f"<table style='font-size:12px;border-collapse:collapse'><tr><th style='text-align:left;padding:2px 8px'>run</th>"
                f"<th>epoch</th>{head}</tr>{''.join(body)}{base}</table>"
                "<div style='font-size:11px;color:#555'>★ best of the column (eff. K is a count, not a score). Recall, MAP@R, "
                "R-precision, NMI: the test split; sub-mode score: held-out probe samples (0 = centers independent of the hidden "
                "fine labels).</div>")

    def _baselines(self, shown: list[str]) -> str:
        """Rows a trained run must beat: the first run's epoch 0 (the untrained model), and Recall@1 and NMI by chance."""
        run = self.runs[0]
        table = run.metrics
        out = ""
        hidden = "&nbsp;<span style='visibility:hidden'>★</span>"
        if table is not None and len(table) and int(table["epoch"].iloc[0]) == 0:
            first = table.iloc[0]
            cells = "".join(f"<td style='padding:2px 8px;text-align:right;color:#777'>{first[c]:{'.2f' if c == 'effective_k' else '.3f'}}{hidden}</td>"
                            if c in first and first[c] == first[c] else "<td></td>" for c in shown)
            out += f"<tr style='color:#777'><td style='padding:2px 8px'>untrained (epoch 0 of {html.escape(run.name)})</td><td style='text-align:right'>0</td>{cells}</tr>"
        chances = run.chance_levels(table)
        if any(c in chances for c in shown):
            cells = "".join(f"<td style='padding:2px 8px;text-align:right;color:#777'>{chances[c]:.3f}{hidden}</td>" if c in chances else "<td></td>"
                            for c in shown)
            out += ("<tr style='color:#777'><td style='padding:2px 8px'>chance (R@1 of a random neighbour, NMI of random clusters "
                    f"of the class sizes)</td><td></td>{cells}</tr>")
        return out

    def close(self) -> None:
        """Close every map."""
        for view in getattr(self, "maps", []):
            view.close()
        super().close()


class CompareChooser(widgets.VBox):
    """Pick runs of a runs folder and compare them (the comparison dashboard); ``initial``: run names to open at once."""

    def __init__(self, runs_dir: str | os.PathLike, initial: Sequence[str] | None = None) -> None:
        from .explorer import list_runs, resolve_run

        self.runs_dir = runs_dir
        names = [p.name for p in list_runs(runs_dir)]
        self.select = widgets.SelectMultiple(options=names, rows=min(8, max(len(names), 2)), description="runs", layout=widgets.Layout(width="460px"))
        self.select.add_class("dmlviz-compare-select")
        self.button = widgets.Button(description="compare", button_style="primary")
        self.message = widgets.HTML()
        self.body = widgets.VBox()
        self.button.on_click(lambda _: self.show(list(self.select.value)))
        super().__init__([widgets.HBox([self.select, self.button]), self.message, self.body])
        self.add_class("dmlviz-compare-chooser")
        self._resolve = resolve_run
        if not names:
            self.message.value = (f'<span class="dmlviz-empty">No runs in {html.escape(str(runs_dir))} yet. Train a grid, e.g. '
                                  f"<code>dmlviz compare --losses softmax,softtriple --runs-dir {html.escape(str(runs_dir))}</code>.</span>")
        elif initial:
            self.show(list(initial))

    def show(self, names: list[str]) -> None:
        """Compare the runs ``names`` (folders of the runs folder); errors are shown, not raised."""
        for child in self.body.children:
            child.close()
        self.body.children = []
        try:
            paths = [self._resolve(self.runs_dir, name) for name in names]
            runs = [load_run(p) for p in paths]
            empty = [r.name for r in runs if not r.epochs]
            if empty:
                raise ValueError(f"runs {empty} have no recorded epoch yet")
            view = Compare(runs)
        except (ValueError, FileNotFoundError) as error:
            self.message.value = f'<span style="color:#d62728">{html.escape(str(error))}</span>'
            return
        self.message.value = ""
        self.select.value = tuple(n for n in names if n in self.select.options)
        self.body.children = [view]
