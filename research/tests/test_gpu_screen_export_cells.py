"""export_cells.py's two-arm file for the GPU screen: the plain and the stain-normalised crops of the
same images, every other copy of a cell, and recoloured and magnified frames at the indices it names."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def crops(data, prefix: str) -> list[np.ndarray]:
    ends = np.cumsum(data[f"{prefix}_len"])
    blob = data[f"{prefix}_jpeg"].tobytes()
    return [np.asarray(Image.open(io.BytesIO(blob[s:e])), np.float32) for s, e in zip(np.r_[0, ends[:-1]], ends)]


def test_stain_arms_hold_the_same_images_and_the_recoloured_ones_at_their_indices(tmp_path):
    out = tmp_path / "cells.npz"
    done = subprocess.run([sys.executable, "-m", "research.gpu_screen.export_cells", "--train", "data/sample/TRAIN",
                           "--out", str(out), "--stain-arms", "--every", "2", "--recoloured-every", "3",
                           "--magnified-every", "4"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = np.load(out)
    n = len(data["all_y"])
    assert len(data["all_group"]) == len(data["file_name"]) == len(data["all_len"]) == len(data["norm_len"]) == n
    # every other copy of each cell: no cell lost, about half the 160 sample images kept
    assert len(np.unique(data["all_group"])) == len(data["group_key"])
    assert 80 <= n < 160
    np.testing.assert_array_equal(data["rec_index"], np.arange(0, n, 3))
    assert len(data["rec_len"]) == len(data["normrec_len"]) == len(data["rec_index"])
    np.testing.assert_array_equal(data["mag_index"], np.arange(0, n, 4))
    assert len(data["mag_len"]) == len(data["normmag_len"]) == len(data["mag_index"])
    plain, normalised = crops(data, "all"), crops(data, "norm")
    recoloured, normalised_recoloured = crops(data, "rec"), crops(data, "normrec")
    magnified = crops(data, "mag")
    assert all(p.shape == (80, 80, 3) for p in plain + normalised + recoloured + magnified)
    # the stain map moves pixels; recolouring moves them much more without it than with it
    assert np.mean([np.abs(a - b).mean() for a, b in zip(plain, normalised)]) > 1.0
    at = data["rec_index"]
    off_plain = np.mean([np.abs(recoloured[i] - plain[j]).mean() for i, j in enumerate(at)])
    off_normalised = np.mean([np.abs(normalised_recoloured[i] - normalised[j]).mean() for i, j in enumerate(at)])
    assert off_normalised < 0.6 * off_plain


def test_an_unknown_stain_adjustment_stops_the_export_in_one_line(tmp_path):
    out = tmp_path / "cells.npz"
    done = subprocess.run([sys.executable, "-m", "research.gpu_screen.export_cells", "--train", "data/sample/TRAIN",
                           "--out", str(out), "--stain-arms", "--adjusted", "turn,hue"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and not out.exists()
    assert done.stderr.strip().splitlines()[-1].startswith("error: --adjusted: stain map: unknown adjustment")
    assert "Traceback" not in done.stderr
