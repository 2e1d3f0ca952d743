"""The map canvas's faster decoding of jupyter-scatter's 2-d arrays gives, in Chromium, the rows the original gave."""

from __future__ import annotations

import pytest

from dmlviz.widgets.point_canvas import _ROWS_DECODED, _ROWS_DECODED_FASTER

pytestmark = pytest.mark.browser

#: both decodings as functions of (data, dtype), with jupyter-scatter's DTYPES; each is run on the same buffers
COMPARE = """
() => {
  const DTYPES = { float32: Float32Array, float64: Float64Array, int32: Int32Array, uint32: Uint32Array };
  const original = (data, dtype) => { %s };
  const faster = (data, dtype) => { %s };
  const rows = (n, w, dtype, pad) => {
    const bytes = DTYPES[dtype].BYTES_PER_ELEMENT;
    const buffer = new ArrayBuffer(pad + n * w * bytes + 8);
    const values = new DTYPES[dtype](n * w);
    for (let i = 0; i < n * w; i++) values[i] = (i * 7919) %% 1000 - 500.25;
    new Uint8Array(buffer, pad, n * w * bytes).set(new Uint8Array(values.buffer));  // pad need not be aligned
    return { view: new DataView(buffer, pad, n * w * bytes), shape: [n, w] };
  };
  const out = {};
  for (const [n, w, dtype] of [[1000, 4, "float32"], [3, 2, "float64"], [0, 4, "float32"], [5, 1, "int32"]]) {
    const a = original(rows(n, w, dtype, 0), dtype), b = faster(rows(n, w, dtype, 0), dtype);
    out[`${n}x${w} ${dtype}`] = JSON.stringify(a) === JSON.stringify(b) && Array.isArray(b) && b.every(Array.isArray);
  }
  // a view that starts inside its buffer: the original reads from the buffer's start, the faster one from the view's
  const shifted = faster(rows(3, 4, "float32", 16), "float32"), plain = faster(rows(3, 4, "float32", 0), "float32");
  out.offset = JSON.stringify(shifted) === JSON.stringify(plain);
  const odd = faster(rows(3, 2, "float32", 2), "float32");
  out.unaligned = JSON.stringify(odd) === JSON.stringify(faster(rows(3, 2, "float32", 0), "float32"));
  return out;
}
"""


def test_the_faster_decoding_gives_the_same_rows(page):
    result = page.evaluate(COMPARE % (_ROWS_DECODED, _ROWS_DECODED_FASTER))
    assert result == {"1000x4 float32": True, "3x2 float64": True, "0x4 float32": True, "5x1 int32": True,
                      "offset": True, "unaligned": True}
