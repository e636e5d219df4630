"""TEST's copies assigned to TEST_SIMPLE's originals (benchmarks/quality/heldout_cells.py)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from benchmarks.quality import heldout_cells


def _cell(path, film, nucleus, seed):
    """A 320x240 frame: a film colour with a nucleus-coloured blob and some noise."""
    rng = np.random.default_rng(seed)
    pixels = np.full((240, 320, 3), film, np.float32) + rng.normal(0, 6, (240, 320, 3))
    yy, xx = np.mgrid[:240, :320]
    pixels[(yy - 120) ** 2 + (xx - 160) ** 2 < 50 ** 2] = nucleus
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)
    return path


def _copy(original, path, rotate, flip):
    """An augmented copy as the dataset made them: rotated, flipped, shifted, with black fill at the edges."""
    image = Image.open(original).rotate(rotate, translate=(12, -8))
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)
    return path


def test_each_copy_goes_to_its_own_original_and_identical_originals_are_one_cell(tmp_path):
    simple, test = tmp_path / "TEST_SIMPLE", tmp_path / "TEST"
    red = _cell(simple / "EOSINOPHIL" / "a.jpeg", (230, 190, 200), (150, 40, 60), 1)
    blue = _cell(simple / "EOSINOPHIL" / "b.jpeg", (200, 200, 230), (60, 50, 170), 2)
    twin = shutil.copy(red, simple / "EOSINOPHIL" / "c.jpeg")   # the same bytes under another name
    green = _cell(simple / "LYMPHOCYTE" / "d.jpeg", (200, 230, 200), (150, 40, 60), 3)  # red's nucleus colour
    originals = [red, blue, twin, green]
    copies, labels, expected = [], [], []
    for i, (original, label, cell) in enumerate([(red, 0, "EOSINOPHIL/a.jpeg"), (blue, 0, "EOSINOPHIL/b.jpeg"),
                                                 (twin, 0, "EOSINOPHIL/a.jpeg"), (green, 1, "LYMPHOCYTE/d.jpeg")]):
        for j, (rotate, flip) in enumerate([(-20, False), (15, True), (5, False)]):
            copies.append(_copy(original, test / original.parent.name / f"{i}_{j}.jpeg", rotate, flip))
            labels.append(label)
            expected.append(cell)
    got = heldout_cells.assign(copies, np.array(labels), originals, np.array([0, 0, 0, 1]))
    assert got == expected


def test_a_copy_of_a_class_without_originals_stops_with_its_file_named(tmp_path):
    original = _cell(tmp_path / "TEST_SIMPLE" / "EOSINOPHIL" / "a.jpeg", (230, 190, 200), (150, 40, 60), 1)
    copy = _copy(original, tmp_path / "TEST" / "MONOCYTE" / "x.jpeg", 0, False)
    with pytest.raises(ValueError, match="x.jpeg: no TEST_SIMPLE original of its class"):
        heldout_cells.assign([copy], np.array([2]), [original], np.array([0]))
