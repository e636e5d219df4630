"""benchmarks/quality/cell_groups.py --nucleus-width: the nucleus width of each cell group, as the
Transform's crop measures it."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from benchmarks.quality.cell_groups import group_nucleus_widths, nucleus_widths
from components.image_example_gen.cell_groups import GroupedFiles

PINK, PURPLE = (217, 166, 179), (115, 51, 179)


def _png(radius: int, h: int = 240, w: int = 320) -> bytes:
    img = np.full((h, w, 3), PINK, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 <= radius ** 2] = PURPLE
    out = io.BytesIO()
    Image.fromarray(img).save(out, "PNG")  # lossless: the disc's edge stays where it was drawn
    return out.getvalue()


def test_width_is_the_square_root_of_the_nucleus_area():
    widths = nucleus_widths([_png(12), _png(24), _png(0)])
    np.testing.assert_allclose(widths[:2], np.sqrt(np.pi) * np.array([12, 24]), rtol=0.12)
    assert widths[2] == 0.0   # no nucleus found


def test_groups_get_the_median_width_and_small_groups_are_left_out():
    files = {f"big{i}": _png(30) for i in range(5)} | {f"small{i}": _png(15) for i in range(4)}
    files["small4"] = _png(0)                     # one copy rotated off its nucleus
    files |= {"stray0": _png(20), "stray1": _png(20)}
    groups = [GroupedFiles("big0", tuple(f"big{i}" for i in range(5))),
              GroupedFiles("small0", tuple(f"small{i}" for i in range(5))),
              GroupedFiles("stray0", ("stray0", "stray1"))]
    widths = group_nucleus_widths(groups, files.__getitem__)
    assert set(widths) == {"big0", "small0"}
    assert abs(widths["small0"] - np.sqrt(np.pi) * 15) < 0.12 * np.sqrt(np.pi) * 15
    assert abs(widths["big0"] / widths["small0"] - 2) < 0.2
