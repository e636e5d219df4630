"""research/val_ensemble.py: each model's val cells and those of the mean of their probabilities."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import model_quality
from research import val_ensemble
from testkit.images import SAMPLE

# Two cells of two images each: cell A is EOSINOPHIL, cell B MONOCYTE (class order of pipeline/config.yaml).
LABELS = np.array([0, 0, 2, 2])
CELLS = ["A", "A", "B", "B"]


@pytest.fixture
def models(tmp_path, monkeypatch):
    # Model 1 gets cell A right but calls B NEUTROPHIL; model 2 calls A NEUTROPHIL but gets B right. Their
    # mean gets both right (their elementwise maximum would not: A would be NEUTROPHIL).
    outputs = {
        str(tmp_path / "m1"): np.array([[.6, .2, .2, .0]] * 2 + [[.1, .1, .35, .45]] * 2, np.float32),
        str(tmp_path / "m2"): np.array([[.3, .0, .0, .7]] * 2 + [[.1, .1, .8, .0]] * 2, np.float32),
    }
    for path in outputs:
        Path(path).mkdir()
    monkeypatch.setattr(model_quality, "val_split", lambda root, images, names: (["f"] * 4, LABELS, CELLS))
    monkeypatch.setattr(model_quality, "predict", lambda model, files: (outputs[model], np.zeros(len(files))))
    return list(outputs)


def test_each_model_and_the_mean_of_their_probabilities_are_measured(models, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert val_ensemble.main([*models, "--data-dir", str(SAMPLE), "--pipeline-root", "/r", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    first, second = (result["models"][m] for m in models)
    assert (first["cells_right"], first["cells_wrong"], first["accuracy"]) == (1, ["B"], 0.5)
    assert (second["cells_right"], second["cells_wrong"], second["accuracy"]) == (1, ["A"], 0.5)
    assert result["ensemble"] == {"accuracy": 1.0, "cells_right": 2, "cells": 2, "cells_wrong": []}
    assert "ensemble (mean probabilities): val 1.0000, cells right 2/2" in capsys.readouterr().out


def test_a_missing_model_stops_with_one_line_and_writes_nothing(models, tmp_path):
    out = tmp_path / "e.json"
    with pytest.raises(SystemExit, match=r"^error: no pushed model at .*gone$"):
        val_ensemble.main([models[0], str(tmp_path / "gone"), "--data-dir", str(SAMPLE), "--pipeline-root", "/r",
                           "--out", str(out)])
    assert not out.exists()


def test_a_missing_data_folder_stops_with_one_line(models, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: data directory not found: .*nowhere$"):
        val_ensemble.main([*models, "--data-dir", str(tmp_path / "nowhere"), "--pipeline-root", "/r",
                           "--out", str(tmp_path / "e.json")])


def test_a_pipeline_root_without_an_ingest_stops_with_one_line(models, tmp_path, monkeypatch):
    monkeypatch.undo()  # the real val_split, on an empty folder; the model folders stay
    with pytest.raises(SystemExit, match=r"^error: no val split under .*: nothing matches .*"):
        val_ensemble.main([*models, "--data-dir", str(SAMPLE), "--pipeline-root", str(tmp_path / "root"),
                           "--out", str(tmp_path / "e.json")])
