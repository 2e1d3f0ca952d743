"""The demo's claim, checked on the demo's own settings: SoftTriple's centers find the two digits of a class."""

import numpy as np
import pytest

from dmlviz.demo import DEMO_RUNS, demo_runs, format_summary, summarize


@pytest.mark.slow
def test_softtriple_centers_find_sub_modes_and_merge(tmp_path):
    runs = demo_runs(tmp_path, epochs=30, progress=False)
    assert set(runs) == set(DEMO_RUNS)
    softmax, softtriple = summarize(runs["softmax"]), summarize(runs["softtriple"])
    # one center per class cannot separate the two digits of a class: purity is the larger digit's share
    assert softmax["purity"] == pytest.approx(0.5, abs=0.03)
    assert softtriple["purity"] > softmax["purity"] + 0.2
    # SoftTriple's regularizer merges centers: effective K falls from K=10 in every class
    assert softtriple["effective_k_first"] == [10] * 5
    assert all(k < 10 for k in softtriple["effective_k_last"])
    assert np.mean(softtriple["effective_k_last"]) <= 7
    assert softtriple["recall@1"] > 0.85 and softmax["recall@1"] > 0.85
    table = format_summary([softmax, softtriple])
    assert "softtriple" in table and "→" in table
    # a second call finds the finished runs and trains nothing
    again = demo_runs(tmp_path, epochs=30, progress=False)
    assert again["softtriple"].info["updated"] == runs["softtriple"].info["updated"]
