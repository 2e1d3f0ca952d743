"""Class picker: a drop-down for a few classes, a search box for thousands (SOP has 11,316 test classes)."""

from __future__ import annotations

from typing import Any, Sequence

import ipywidgets as widgets
import traitlets

#: above this many classes the picker is a search box (typing filters the names) instead of a drop-down
SEARCH_ABOVE = 60


class ClassPicker(widgets.HBox):
    """``value``: the picked class id, -1 for none. ``set_classes(ids, names)`` fills it.

    With more than ``SEARCH_ABOVE`` classes it is a Combobox: the browser filters the names as
    one types, and a name is taken when it matches one exactly (names that repeat carry their id).
    """

    value = traitlets.Int(-1)

    def __init__(self, description: str = "class", width: str = "300px") -> None:
        self._dropdown = widgets.Dropdown(description=description, options=[("—", -1)], value=-1, layout=widgets.Layout(width=width))
        self._search = widgets.Combobox(
            description=description, placeholder="type to search classes", ensure_option=True, options=[],
            layout=widgets.Layout(width=width),
        )
        self._count = widgets.HTML()
        self._ids_by_label: dict[str, int] = {}
        self._labels_by_id: dict[int, str] = {}
        self._dropdown.observe(self._from_dropdown, "value")
        self._search.observe(self._from_search, "value")
        self.observe(self._show_value, "value")
        super().__init__([self._dropdown])

    @property
    def searching(self) -> bool:
        """Whether the picker is the search box (many classes)."""
        return self._search in self.children

    @property
    def options(self) -> list[tuple[str, int]]:
        """(label, class id) of every class offered, "—" (-1) first."""
        return [("—", -1)] + [(label, cid) for cid, label in self._labels_by_id.items()]

    def set_classes(self, ids: Sequence[int], names: Sequence[str]) -> None:
        """Offer the classes ``ids`` with their ``names`` (same length); keep the value if it is still offered."""
        labels = [str(n) for n in names]
        repeated = {label for label in labels if labels.count(label) > 1} if len(labels) <= SEARCH_ABOVE else _repeated(labels)
        self._labels_by_id = {int(c): (f"{label} (#{int(c)})" if label in repeated else label) for c, label in zip(ids, labels)}
        self._ids_by_label = {label: cid for cid, label in self._labels_by_id.items()}
        keep = self.value if self.value in self._labels_by_id else -1
        if len(labels) > SEARCH_ABOVE:
            self._search.options = list(self._labels_by_id.values())
            self._count.value = f'<span style="font-size:11px;color:#666">{len(labels):,} classes: type part of a name</span>'
            self.children = [self._search, self._count]
        else:
            with self.hold_trait_notifications():
                self._dropdown.options = self.options
            self.children = [self._dropdown]
        self.value = keep
        self._show_value()

    def _from_dropdown(self, change: Any) -> None:
        if change["new"] is not None and not self.searching:
            self.value = int(change["new"])

    def _from_search(self, change: Any) -> None:
        text = change["new"]
        if text in self._ids_by_label:
            self.value = self._ids_by_label[text]
        elif text == "":
            self.value = -1

    def _show_value(self, change: Any = None) -> None:
        label = self._labels_by_id.get(self.value)
        if self.searching:
            want = label or ""
            if self._search.value != want:
                self._search.value = want
        elif self._dropdown.value != (self.value if label is not None else -1):
            self._dropdown.value = self.value if label is not None else -1


def _repeated(labels: list[str]) -> set[str]:
    seen: set[str] = set()
    twice: set[str] = set()
    for label in labels:
        (twice if label in seen else seen).add(label)
    return twice
