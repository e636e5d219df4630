"""The tuning probe (research/val_probe.py) measures val only and passes the overrides to the run."""
from __future__ import annotations

import json

import pytest

from benchmarks import model_quality
from research import val_probe


def _fake_run(calls):
    def run_pipeline(data_dir, work, extra):
        calls.append(extra)
        return {"pushed": "/m/1", "pipeline_root": "/r", "trainer_s": 10.0, "val_accuracy_by_epoch": [0.5, 0.75]}
    return run_pipeline


def test_probe_passes_seed_and_overrides_and_writes_val_figures(tmp_path, monkeypatch, capsys):
    calls, measured = [], []
    monkeypatch.setattr(model_quality, "run_pipeline", _fake_run(calls))
    val = {"accuracy": 0.8, "by_cell": {"cells_right": 3, "cells": 4, "wrong": [{"cell": "c"}]},
           "derived": {"recoloured": {"accuracy": 0.7}}}

    def measure_val(pushed, root, images, config):
        measured.append((pushed, root))
        return {"val": val}
    monkeypatch.setattr(model_quality, "measure_val", measure_val)
    out = tmp_path / "p.json"
    assert val_probe.main(["--data-dir", "data/sample", "--work", str(tmp_path), "--out", str(out), "--seed", "2",
                           "--set", "image_size=96", "--set", "training.epochs=3"]) == 0
    assert calls == [["--set", "training.seed=2", "--set", "training.train_on_val=false",
                      "--set", "image_size=96", "--set", "training.epochs=3"]]
    assert measured == [("/m/1", "/r")]
    result = json.loads(out.read_text())
    assert result["val_served"] == 0.8 and result["cells_right"] == 3 and "test" not in result
    assert "recoloured 0.7000" in capsys.readouterr().out


def test_probe_without_a_val_split_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(model_quality, "run_pipeline", _fake_run([]))
    monkeypatch.setattr(model_quality, "measure_val", lambda *a: {})
    with pytest.raises(SystemExit, match="no val split"):
        val_probe.main(["--data-dir", "data/sample", "--work", str(tmp_path), "--out", str(tmp_path / "p.json")])


def test_probe_refuses_to_train_on_val(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(model_quality, "run_pipeline", _fake_run(calls))
    with pytest.raises(SystemExit, match="always runs with training.train_on_val=false"):
        val_probe.main(["--data-dir", "data/sample", "--work", str(tmp_path), "--out", str(tmp_path / "p.json"),
                        "--set", "training.train_on_val=true"])
    assert calls == []
