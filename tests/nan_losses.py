"""A SoftTriple loss that turns NaN in chosen batches, for the divergence tests (importable like image_trees)."""

from __future__ import annotations

from dmlviz.losses import SoftTriple


class NanSoftTriple(SoftTriple):
    """SoftTriple (4 classes, 8-d, K=2) whose loss is NaN from call ``first`` on (through call ``last``, if given)."""

    name = "softtriple"

    def __init__(self, first: int, last: int | None = None):
        super().__init__(4, 8, centers_per_class=2)
        self.first, self.last, self.calls = first, last, 0

    def compute(self, embeddings, labels):
        self.calls += 1
        parts = super().compute(embeddings, labels)
        if self.calls >= self.first and (self.last is None or self.calls <= self.last):
            parts["classification"] = parts["classification"] * float("nan")
        return parts
