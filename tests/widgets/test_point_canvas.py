"""The large map's canvas: colour categories that keep their codes, so an epoch switch sends positions only."""

from __future__ import annotations

import numpy as np

from dmlviz.widgets.point_canvas import LookTable


def _rgba(hex_colour: str, alpha: float) -> list[float]:
    return [int(hex_colour[1:3], 16) / 255, int(hex_colour[3:5], 16) / 255, int(hex_colour[5:7], 16) / 255, round(alpha, 3)]


def test_each_point_gets_the_category_of_its_colour_and_opacity():
    table = LookTable()
    colours = np.array(["#ff0000", "#00ff00", "#ff0000", "#0000ff", "#ff0000"])
    alpha = np.array([1.0, 0.8, 0.45, 0.8, 1.0])
    codes = table.codes(colours, alpha)
    assert codes.shape == (5,) and codes.dtype == np.int64
    assert [table.colours[c] for c in codes] == [_rgba(h, a) for h, a in zip(colours, alpha)]
    assert len(table.colours) == 4  # (red, 1), (green, .8), (red, .45), (blue, .8)


def test_looks_keep_their_codes_across_draws_and_the_table_only_grows():
    table = LookTable()
    first = table.codes(np.array(["#ff0000", "#00ff00"]), np.array([1.0, 1.0]))
    colours_before = [list(c) for c in table.colours]
    # the same looks in another order and count: the same codes, the same table (nothing new to send)
    again = table.codes(np.array(["#00ff00", "#ff0000", "#00ff00"]), np.array([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(again, first[[1, 0, 1]])
    assert table.colours == colours_before
    # a new look is appended; the old codes stay
    more = table.codes(np.array(["#ff0000", "#123456"]), np.array([1.0, 0.5]))
    assert more[0] == first[0] and more[1] == 2 and table.colours[:2] == colours_before


def test_looks_held_ahead_need_no_new_table_later():
    table = LookTable()
    centers = np.array(["#ff0000", "#00ff00"])
    also = (np.repeat(centers, 2), np.tile([1.0, 0.45], 2))
    table.codes(centers, np.array([1.0, 1.0]), also)
    size = len(table.colours)
    codes = table.codes(centers, np.array([0.45, 0.45]), also)  # now both own no sample: already in the table
    assert len(table.colours) == size == 4
    assert [table.colours[c] for c in codes] == [_rgba("#ff0000", 0.45), _rgba("#00ff00", 0.45)]


def test_the_table_starts_afresh_when_most_of_it_is_no_longer_used():
    table = LookTable()
    for shade in range(0, 250, 2):  # 125 draws of one new look each
        codes = table.codes(np.array([f"#{shade:02x}0000"]), np.array([1.0]))
        assert table.colours[codes[0]] == _rgba(f"#{shade:02x}0000", 1.0)
    assert len(table.colours) <= 2 * 64
    # one draw of 200 looks, then a draw of one of them: afresh, and the table's version says it changed
    many = np.array([f"#00{shade:02x}00" for shade in range(200)])
    table.codes(many, np.ones(200))
    version = table.version
    codes = table.codes(many[:1], np.ones(1))
    assert table.version > version and table.colours == [_rgba("#000000", 1.0)] and codes.tolist() == [0]


def test_the_version_changes_exactly_when_the_table_does():
    table = LookTable()
    table.codes(np.array(["#ff0000"]), np.array([1.0]))
    version = table.version
    table.codes(np.array(["#ff0000", "#ff0000"]), np.array([1.0, 1.0]))
    assert table.version == version
    table.codes(np.array(["#ff0000"]), np.array([0.5]))
    assert table.version > version


def test_no_points_give_no_codes():
    table = LookTable()
    assert table.codes(np.array([], dtype="U7"), np.array([])).shape == (0,)


def test_the_pinned_jupyter_scatter_gets_the_faster_row_decoding():
    import jscatter.widget

    from dmlviz.widgets.point_canvas import _ROWS_DECODED, _ROWS_DECODED_FASTER, faster_rows

    code = str(jscatter.widget.JupyterScatter._esm)
    changed = faster_rows(code)
    assert _ROWS_DECODED not in changed and changed.count(_ROWS_DECODED_FASTER) == 1
    assert len(changed) - len(code) == len(_ROWS_DECODED_FASTER) - len(_ROWS_DECODED)  # nothing else touched


def test_a_module_that_decodes_otherwise_is_left_as_it_is():
    from dmlviz.widgets.point_canvas import faster_rows

    code = "export default { render() {} };"
    assert faster_rows(code) == code
