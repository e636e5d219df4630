"""The quality harness's val measurement and report (benchmarks/model_quality.py), without a trained model."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import model_quality as mq
from benchmarks.quality import derived, metrics
from pipeline import config as config_module

NAMES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
CONFIG = SimpleNamespace(class_names=NAMES, browser=SimpleNamespace(review_threshold=0.8))


def _fake_predict(calls):
    def predict(saved_model, files, transform=None):
        calls.append((len(files), transform))
        # Right on plain images, always EOSINOPHIL on derived ones.
        labels = np.array([int(Path(f).stem) % 4 for f in files])
        probs = np.eye(4, dtype=np.float32)[labels if transform is None else np.zeros_like(labels)]
        return probs, np.zeros(len(files), np.float32)
    return predict


def test_measure_val_adds_every_derived_variant_on_a_subset_of_val(monkeypatch):
    files = [Path(f"/v/{i}.jpeg") for i in range(40)]
    labels = np.arange(40) % 4
    cells = [f"cell{i // 4}" for i in range(40)]
    calls = []
    monkeypatch.setattr(mq, "val_split", lambda root, images, names: (files, labels, cells))
    monkeypatch.setattr(mq, "predict", _fake_predict(calls))
    monkeypatch.setattr(mq, "DERIVED_SUBSET", 8)  # every 5th image: all four classes
    val = mq.measure_val("model", "root", Path("/v"), CONFIG)["val"]
    assert val["accuracy"] == 1.0 and val["by_cell"]["cells_right"] == 10
    assert set(val["derived"]) == set(derived.VARIANTS)
    for summary in val["derived"].values():
        assert summary["n"] == 8 and summary["accuracy"] == 0.25  # only the eosinophils of the subset
    assert [n for n, t in calls] == [40] + [8] * len(derived.VARIANTS)


def test_report_lists_val_and_its_derived_variants_beside_test(monkeypatch):
    probs = np.eye(4, dtype=np.float32)[[0, 1, 2, 2]]
    labels = np.array([0, 1, 2, 3])
    summary = metrics.summarize(probs, labels, NAMES, 0.8, np.zeros(4, np.float32))
    run = {"seed": 1, "test": summary, "test_simple": summary, "derived": {"recoloured": summary},
           "val": {**summary, "by_cell": metrics.by_cell(labels, probs.argmax(1), ["a", "b", "c", "d"], NAMES),
                   "derived": {"recoloured": summary, "magnified_x3": summary}},
           "val_accuracy_by_epoch": [0.5], "params": 1, "saved_model_bytes": 1, "tfjs_bytes": 1,
           "trainer_s": 1.0, "train_images_per_s": 1.0}
    report = {"date": "d", "commit": "c" * 40, "data_dir": "x", "seeds": [1], "class_names": NAMES,
              "review_threshold": 0.8, "seeds_runs": [run], "default_test_accuracy": mq.spread([0.75])}
    text = mq.markdown(report)
    for variant in ("TEST", "recoloured", "val", "val recoloured", "val magnified_x3"):
        assert f"| default | 1 | {variant} | 0.7500 |" in text


def test_a_model_trained_on_val_gets_no_val_figures(monkeypatch):
    files = [Path(f"/t/{i}.jpeg") for i in range(8)]
    monkeypatch.setattr(mq, "files_and_labels", lambda folder, names: (files, np.arange(8) % 4))
    monkeypatch.setattr(mq, "predict", _fake_predict([]))
    monkeypatch.setattr(mq, "param_count", lambda *a: 1)
    monkeypatch.setattr(mq, "dir_bytes", lambda path: 1)
    val_measured = []
    monkeypatch.setattr(mq, "measure_val", lambda *a: val_measured.append(a) or {"val": {}})
    monkeypatch.setattr(mq.heldout_cells, "assign", lambda copies, *a: [f"cell{i % 2}" for i in range(len(copies))])
    run = {"pushed": "m", "pipeline_root": "r", "trainer_s": 1.0, "epochs_run": 1, "train_examples": 8,
           "val_accuracy_by_epoch": [0.99], "tfjs_bytes": 1}
    for train_on_val, val_measures_so_far in ((False, 1), (True, 1)):
        config = SimpleNamespace(**vars(CONFIG), image_size=80, training=SimpleNamespace(train_on_val=train_on_val))
        result = mq.measure(run, "default", Path("/t"), config)
        assert len(val_measured) == val_measures_so_far and ("val" in result) == (not train_on_val)

    report = {"date": "d", "commit": "c" * 40, "data_dir": "x", "seeds": [1], "class_names": NAMES,
              "review_threshold": 0.8, "val_in_training": True, "seeds_runs": [{"seed": 1, **result}],
              "default_test_accuracy": mq.spread([1.0])}
    text = mq.markdown(report)
    assert "0.9900" not in text  # the Trainer's val figure on seen cells
    assert "trained on `val` too" in text


def test_trained_examples_count_val_when_the_run_trains_on_it():
    report = {"splits": {"train": {"examples": 90}, "val": {"examples": 10}, "eval": {"examples": 40}}}
    assert mq.trained_examples(report, mq.run_config(["--set", "training.seed=1"])) == 100  # the default trains on val
    assert mq.trained_examples(report, mq.run_config(["--set", "training.train_on_val=false", "--epochs", "3"])) == 90


def test_remeasure_measures_the_stored_models_again_without_training(monkeypatch, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    for split in ("TRAIN", "TEST", "TEST_SIMPLE"):
        for name in NAMES:
            (data / split / name).mkdir(parents=True)
            (data / split / name / "a.jpeg").write_bytes(b"x")
    out.mkdir()
    labels = np.array([0, 1, 2, 3])
    old = metrics.summarize(np.eye(4, dtype=np.float32)[[0, 0, 0, 0]], labels, NAMES, 0.8, np.zeros(4, np.float32))
    new = metrics.summarize(np.eye(4, dtype=np.float32)[[0, 1, 2, 3]], labels, NAMES, 0.8, np.zeros(4, np.float32))
    stored = {"seed": 1, "pushed": str(tmp_path), "trainer_s": 5.0, "test": old, "test_simple": old,
              "derived": {"magnified_x3": old}, "params": 1, "saved_model_bytes": 1, "tfjs_bytes": 1,
              "train_images_per_s": 1.0}
    report = {"date": "d", "commit": "c" * 40, "data_dir": str(data), "seeds": [1], "class_names": NAMES,
              "review_threshold": 0.8, "val_in_training": True, "seeds_runs": [stored],
              "default_test_accuracy": mq.spread([0.25])}
    (out / "model_quality.json").write_text(mq.json.dumps(report))
    measured = []
    monkeypatch.setattr(mq, "measure", lambda run, model, images, config, sources=None: measured.append(run["pushed"]) or
                        {**run, "test": new, "test_simple": new, "derived": {"magnified_x3": new}})
    monkeypatch.setattr(mq, "tutorial_result", lambda *a, **k: None)
    monkeypatch.setattr(mq, "run_pipeline", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    argv = ["model_quality.py", "--data-dir", str(data), "--out", str(out), "--report-only", "--no-throughput"]

    monkeypatch.setattr(mq.sys, "argv", argv + ["--remeasure"])
    assert mq.main() == 0 and measured == [str(tmp_path)]
    result = mq.json.loads((out / "model_quality.json").read_text())
    run = result["seeds_runs"][0]
    assert run["test"]["accuracy"] == 1.0 and run["derived"]["magnified_x3"]["accuracy"] == 1.0
    assert run["trainer_s"] == 5.0 and result["rebuilt"]["remeasured"]
    assert mq.json.loads((out / "seed1.json").read_text())["test"]["accuracy"] == 1.0
    assert "measured again on their stored models" in (out / "model_quality.md").read_text()

    stored["pushed"] = str(tmp_path / "gone")  # a model no longer on disk: one line, nothing rewritten
    (out / "model_quality.json").write_text(mq.json.dumps(report))
    assert mq.main() == 2 and measured == [str(tmp_path)]
    assert mq.json.loads((out / "model_quality.json").read_text())["seeds_runs"][0]["test"]["accuracy"] == 0.25


def test_seed_results_from_separate_runs_join_into_one_report(monkeypatch, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    for split in ("TRAIN", "TEST", "TEST_SIMPLE"):
        (data / split).mkdir(parents=True)
    labels = np.array([0, 1, 2, 3])
    files = []
    for seed, predicted in ((2, [0, 1, 2, 2]), (1, [0, 1, 2, 3])):   # given out of order
        result = metrics.summarize(np.eye(4, dtype=np.float32)[predicted], labels, NAMES, 0.8, np.zeros(4, np.float32))
        run = {"seed": seed, "commit": "a" * 40, "pushed": str(tmp_path), "trainer_s": 5.0, "test": result,
               "test_simple": result, "derived": {}, "params": 1, "saved_model_bytes": 1, "tfjs_bytes": 1,
               "train_images_per_s": 1.0}
        (tmp_path / f"run{seed}").mkdir()
        files.append(tmp_path / f"run{seed}" / f"seed{seed}.json")
        files[-1].write_text(mq.json.dumps(run))
    monkeypatch.setattr(mq, "tutorial_result", lambda *a, **k: None)
    monkeypatch.setattr(mq, "run_pipeline", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    argv = ["model_quality.py", "--data-dir", str(data), "--out", str(out), "--report-only", "--no-throughput",
            "--seed-results"]

    monkeypatch.setattr(mq.sys, "argv", argv + [str(f) for f in files])
    assert mq.main() == 0
    report = mq.json.loads((out / "model_quality.json").read_text())
    assert report["seeds"] == [1, 2] and report["commit"] == "a" * 40
    assert report["default_test_accuracy"]["mean"] == 0.875
    assert "Seeds: [1, 2]" in (out / "model_quality.md").read_text()
    # The report says what made it and where (its figures had no command or machine to check them by).
    assert report["command"].startswith("python -m benchmarks.model_quality --data-dir ")
    assert f"Made by `{report['command']}` on " in (out / "model_quality.md").read_text()
    assert "CPUs" in report["machine"]

    monkeypatch.setattr(mq.sys, "argv", argv + [str(files[0]), str(tmp_path / "missing.json")])
    assert mq.main() == 2   # one line, and the report already there stays as it was
    assert mq.json.loads((out / "model_quality.json").read_text())["seeds"] == [1, 2]


def test_a_harness_run_reads_no_lab_of_the_user(monkeypatch, tmp_path):
    # A user's labs/ folder (docs/labs.md step 3) or labs.sources must not reach the default model's
    # runs: it would train on lab cells and warm-start later seeds from the first one's model.
    user_labs = tmp_path / "labs"
    (user_labs / "mylab" / "LYMPHOCYTE").mkdir(parents=True)
    user_config = [f"labs.dir={user_labs}", f"labs.sources={{other: {tmp_path}}}"]
    monkeypatch.setattr(mq, "load_config", lambda path=None, overrides=None: config_module.load_config(
        path, [*user_config, *(overrides or [])]))
    captured = []
    monkeypatch.setattr(mq.local_runner, "main", lambda args: captured.append(args) or 1)  # a failed run
    with pytest.raises(SystemExit):
        mq.run_pipeline(str(tmp_path / "data"), str(tmp_path / "work"), ["--set", "training.seed=2"])
    config = mq.run_config(captured[0])
    assert config.lab_sources() == {}
    assert Path(config.labs_path).is_relative_to(tmp_path / "work") and not Path(config.labs_path).exists()


def test_report_header_says_what_the_flagged_figures_count():
    # An atypical but confident answer is flagged too (metrics.review_flags): the header must say so.
    probs = np.eye(4, dtype=np.float32)
    summary = metrics.summarize(probs, np.arange(4), NAMES, 0.8, np.array([0, 2, 0, 0], np.float32))
    assert summary["review_flag_rate"] == 0.25
    run = {"seed": 1, "test": summary, "test_simple": summary, "derived": {}, "params": 1, "saved_model_bytes": 1,
           "tfjs_bytes": 1, "trainer_s": 1.0, "train_images_per_s": 1.0}
    report = {"date": "d", "commit": "c" * 40, "data_dir": "x", "seeds": [1], "class_names": NAMES,
              "review_threshold": 0.8, "val_in_training": True, "seeds_runs": [run],
              "default_test_accuracy": mq.spread([1.0])}
    assert "top probability < 0.8, or atypicality over 1" in mq.markdown(report)


def test_test_is_also_reported_per_cell_each_cell_weighing_alike(monkeypatch, tmp_path):
    """Decision (a) of the cross-lab issue: beside TEST's image accuracy, its accuracy averaged over cells."""
    files = [tmp_path / f"{i}.jpeg" for i in range(8)]
    monkeypatch.setattr(mq, "files_and_labels", lambda folder, names: (files, np.arange(8) % 4))

    def predict(saved_model, files, transform=None):  # every LYMPHOCYTE copy wrong, the rest right
        labels = np.arange(len(files)) % 4
        return np.eye(4, dtype=np.float32)[np.where(labels == 1, 0, labels)], np.zeros(len(files), np.float32)
    monkeypatch.setattr(mq, "predict", predict)
    monkeypatch.setattr(mq, "param_count", lambda *a: 1)
    monkeypatch.setattr(mq, "dir_bytes", lambda path: 1)
    # Cells: all 6 images of classes 0, 2, 3 are one cell each ... and the two lymphocytes a cell each.
    monkeypatch.setattr(mq.heldout_cells, "assign",
                        lambda copies, labels, *a: [f"c{y}" if y != 1 else f"lym{i}" for i, y in enumerate(labels)])
    run = {"pushed": "m", "pipeline_root": "r", "trainer_s": 1.0, "epochs_run": 1, "train_examples": 8,
           "val_accuracy_by_epoch": [], "tfjs_bytes": 1}
    config = SimpleNamespace(**vars(CONFIG), image_size=80, training=SimpleNamespace(train_on_val=True))
    result = mq.measure(run, "default", tmp_path, config)
    assert result["test"]["accuracy"] == 0.75
    assert result["test_by_cell"]["cells"] == 5 and result["test_by_cell"]["mean_share_right"] == 0.6

    older = {k: v for k, v in result.items() if k != "test_by_cell"}  # a seed result from before the column
    report = {"date": "d", "commit": "c" * 40, "data_dir": "x", "seeds": [1, 2], "class_names": NAMES,
              "review_threshold": 0.8, "val_in_training": True,
              "seeds_runs": [{"seed": 1, **result}, {"seed": 2, **older}],
              "default_test_accuracy": mq.spread([0.75, 0.75])}
    text = mq.markdown(report)
    assert "| default | 1 | 0.7500 | 0.6000 | 6/8 |" in text
    assert "| default | 2 | 0.7500 | - | 6/8 |" in text
    assert "averaged over TEST's 5 cells" in text and "(EOS 1, LYM 2, MON 1, NEU 1)" in text
    assert "Over seeds: mean 0.6000" in text and "EOS 1.000, LYM 0.000, MON 1.000, NEU 1.000" in text
    assert "Copies per cell (EOS 2-2, LYM 1-1, MON 2-2, NEU 2-2)" in text


def test_a_class_without_test_images_stops_the_harness_before_training_in_one_line(monkeypatch, tmp_path, capsys):
    data = tmp_path / "data"
    for split in ("TRAIN", "TEST", "TEST_SIMPLE"):
        for name in NAMES:
            if (split, name) not in (("TEST", "MONOCYTE"), ("TEST_SIMPLE", "NEUTROPHIL")):
                (data / split / name).mkdir(parents=True)
                (data / split / name / "a.jpeg").write_bytes(b"x")
    (data / "TEST_SIMPLE" / "NEUTROPHIL").mkdir()  # there, but empty
    monkeypatch.setattr(mq, "run_pipeline", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    monkeypatch.setattr(mq.sys, "argv", ["model_quality.py", "--data-dir", str(data), "--out", str(tmp_path / "out"),
                                         "--other-labs-root", str(tmp_path / "no-labs"), "--tutorial", "skip"])
    assert mq.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no images in TEST/MONOCYTE, TEST_SIMPLE/NEUTROPHIL under "), err
