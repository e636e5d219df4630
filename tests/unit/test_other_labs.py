"""The cross-lab report (benchmarks/quality/other_labs.py, its place in the harness, benchmarks/cross_lab.py),
without a trained model."""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import cross_lab
from benchmarks import model_quality as mq
from benchmarks.quality import metrics, other_labs

NAMES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]


_IMAGES = itertools.count()


def _lab(root, counts: dict[str, int]):
    """Class folders of distinct images (the same image twice is one cell, counted once)."""
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            k = next(_IMAGES)
            Image.new("RGB", (12, 12), (k % 256, k // 256 % 256, 50)).save(root / cls / f"{cls.lower()}_{i}.bmp")
    return root


def _predict_by_name(answers: dict[str, list[float]]):
    """Probabilities chosen by the file's class folder: a model with a fixed answer per class."""
    def predict(files):
        probs = np.array([answers[f.parent.name] for f in files], np.float32)
        return probs, np.zeros(len(files), np.float32)
    return predict


def test_discover_finds_every_lab_with_class_folders_and_nothing_else(tmp_path):
    _lab(tmp_path / "tecom", {"NEUTROPHIL": 1})
    _lab(tmp_path / "other", {"MONOCYTE": 2})
    (tmp_path / "empty" / "NEUTROPHIL").mkdir(parents=True)
    (tmp_path / "README.md").write_text("x")
    assert other_labs.discover(tmp_path) == {"other": tmp_path / "other", "tecom": tmp_path / "tecom"}
    assert other_labs.discover(tmp_path / "missing") == {}


def test_a_class_the_model_does_not_know_is_kept_apart_not_counted(tmp_path):
    lab = _lab(tmp_path / "lab", {"neutrophil": 3, "EOSINOPHIL": 1, "BASOPHIL": 1})
    cells = other_labs.load("lab", lab, NAMES)
    assert len(cells.files) == 4 and sorted(cells.labels.tolist()) == [0, 3, 3, 3]
    assert [p.name for p in cells.outside] == ["basophil_0.bmp"]


def test_a_lab_without_any_cell_of_the_classes_is_one_error(tmp_path):
    lab = _lab(tmp_path / "lab", {"BASOPHIL": 1})
    with pytest.raises(ValueError, match="no images under"):
        other_labs.load("lab", lab, NAMES)


@pytest.mark.parametrize("text", ["tecom", "=dir", "name="])
def test_other_lab_argument_needs_name_and_dir(text):
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=DIR"):
        other_labs.parse_other_lab(text)


def test_other_lab_argument_needs_an_existing_folder(tmp_path):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a folder"):
        other_labs.parse_other_lab(f"x={tmp_path / 'nope'}")
    assert other_labs.parse_other_lab(f"x={tmp_path}") == ("x", tmp_path)


def test_measure_reports_flags_on_errors_and_right_answers_and_the_unknown_cell(tmp_path):
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 2, "NEUTROPHIL": 2, "BASOPHIL": 1})
    predict = _predict_by_name({
        "EOSINOPHIL": [0.95, 0.05, 0, 0],   # right, confident
        "NEUTROPHIL": [0.6, 0.1, 0.1, 0.2],  # wrong, flagged
        "BASOPHIL": [0.1, 0.1, 0.1, 0.7],    # outside the classes, flagged
    })
    result = other_labs.measure(predict, other_labs.load("lab", lab, NAMES), NAMES, 0.8)
    assert result["accuracy"] == 0.5 and result["review_flag_rate"] == 0.5
    assert result["errors_flagged"] == 1.0 and result["right_flagged"] == 0.0
    assert result["accuracy_unflagged"] == 1.0
    assert result["confusion_matrix"][3] == [2, 0, 0, 0]
    assert result["class_counts"] == {"EOSINOPHIL": 2, "LYMPHOCYTE": 0, "MONOCYTE": 0, "NEUTROPHIL": 2}
    assert result["outside"] == [{"file": "BASOPHIL/basophil_0.bmp", "answer": "NEUTROPHIL", "probability":
                                  pytest.approx(0.7), "probabilities": [0.1, 0.1, 0.1, 0.7], "flagged": True}]


def test_nan_probabilities_count_as_flagged():
    probs = np.array([[np.nan] * 4, [1, 0, 0, 0]], np.float32)
    summary = metrics.summarize(probs, np.array([1, 0]), NAMES, 0.8)
    assert summary["review_flag_rate"] == 0.5 and summary["errors_flagged"] == 1.0


def _report_with(other: dict, tutorial: dict | None = None) -> dict:
    summary = metrics.summarize(np.eye(4, dtype=np.float32), np.arange(4), NAMES, 0.8)
    runs = [{"seed": s, "test": summary, "test_simple": summary, "derived": {}, "params": 1, "saved_model_bytes": 1,
             "tfjs_bytes": 1, "trainer_s": 1.0, "train_images_per_s": 1.0, "other_labs": other} for s in (1, 2)]
    return {"date": "d", "commit": "c" * 40, "data_dir": "x", "seeds": [1, 2], "class_names": NAMES,
            "review_threshold": 0.8, "val_in_training": True, "seeds_runs": runs,
            "default_test_accuracy": mq.spread([1.0, 1.0]), "tutorial": tutorial}


def test_harness_report_has_each_seed_their_mean_and_says_when_the_tutorial_is_missing(tmp_path):
    lab = _lab(tmp_path / "tecom", {"EOSINOPHIL": 1, "NEUTROPHIL": 1, "BASOPHIL": 1})
    predict = _predict_by_name({"EOSINOPHIL": [0.9, 0.1, 0, 0], "NEUTROPHIL": [0.9, 0.1, 0, 0],
                                "BASOPHIL": [0.9, 0.1, 0, 0]})
    other = other_labs.measure_all(predict, {"tecom": lab}, NAMES, 0.8)
    summary = metrics.summarize(np.eye(4, dtype=np.float32), np.arange(4), NAMES, 0.8)
    tutorial = {"seed": 1, "test": summary, "test_simple": summary, "derived": {}, "params": 1,
                "saved_model_bytes": 1, "tfjs_bytes": 1, "trainer_s": 1.0, "train_images_per_s": 1.0}
    text = mq.markdown(_report_with(other, tutorial))
    assert "## Other labs" in text
    for seed in ("1", "2", "mean"):
        assert f"| tecom | default | {seed} | 2 | 0.5000 |" in text
    assert "tutorial_cnn: not measured on this source" in text
    assert "tecom BASOPHIL/basophil_0.bmp: default seed 1 answered EOSINOPHIL (0.90), NOT flagged" in text

    text = mq.markdown(_report_with(other, {**tutorial, "other_labs": other}))
    assert "| tecom | tutorial_cnn | 1 | 2 | 0.5000 |" in text and "not measured" not in text


def test_a_lab_can_measure_a_model_on_its_own_cells(tmp_path, monkeypatch, capsys):
    lab = _lab(tmp_path / "mylab", {"LYMPHOCYTE": 2})
    model = tmp_path / "7"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    monkeypatch.setattr(mq, "predict", lambda saved_model, files: _predict_by_name(
        {"LYMPHOCYTE": [0, 1, 0, 0]})(files))
    out = tmp_path / "r.json"
    assert cross_lab.main(["--model", str(model), "--other-lab", f"mylab={lab}", "--out", str(out)]) == 0
    assert "| mylab | 7 | - | 2 | 1.0000 |" in capsys.readouterr().out
    assert out.exists()


def test_cross_lab_refuses_a_lab_without_the_classes_in_one_line(tmp_path, capsys):
    lab = _lab(tmp_path / "mylab", {"BASOPHIL": 1})
    model = tmp_path / "7"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    assert cross_lab.main(["--model", str(model), "--other-lab", f"mylab={lab}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --other-lab mylab: no images under") and "\n" not in err


def test_adaptation_draws_are_nested_even_over_classes_and_leave_half_of_each(tmp_path):
    from benchmarks import lab_adaptation

    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    cells = other_labs.load("lab", lab, NAMES)
    order = lab_adaptation.draw(cells, 20, seed=1, class_names=NAMES)
    counts = np.bincount(cells.labels[order], minlength=4).tolist()
    assert counts == [2, 5, 5, 8]  # eosinophils stop at half their 4; the rest share evenly
    assert lab_adaptation.draw(cells, 8, seed=1, class_names=NAMES) == order[:8]
    assert np.bincount(cells.labels[order[:8]], minlength=4).tolist() == [2, 2, 2, 2]
    assert lab_adaptation.draw(cells, 20, seed=2, class_names=NAMES) != order
    with pytest.raises(ValueError, match="at most 27"):
        lab_adaptation.draw(cells, 28, seed=1, class_names=NAMES)


def test_adaptation_report_gives_the_mean_over_bases_per_size():
    from benchmarks import lab_adaptation

    def row(base, reviewed, accuracy, recalls, test):
        per_class = {n: {"recall": r} for n, r in zip(NAMES, recalls)}
        return {"base": base, "reviewed": reviewed, "lab": {"accuracy": accuracy, "per_class": per_class,
                "review_flag_rate": 0.5, "errors_flagged": None}, "test": {"accuracy": test, "review_flag_rate": 0.1}}

    report = {"date": "d", "commit": "c" * 10, "lab": "lab", "lab_dir": "x", "held_out_cells": 9, "class_names": NAMES,
              "review_threshold": 0.8, "eval_fraction": 0.3, "adapt_steps": 300, "max_accuracy_drop": 0.01,
              "rows": [row(1, 0, 0.1, [1, 0, 0, 0], 0.88), row(1, 100, 0.8, [1, 0.6, 0.5, 0.9], 0.87),
                       row(2, 0, 0.3, [1, 0.2, 0, 0], 0.90), row(2, 100, 0.9, [1, 0.8, 0.7, 0.9], 0.89)]}
    report["rows"][1]["lab"]["not_a_cell"] = {"review_flag_rate": 0.97}  # an older report's rows lack it
    text = lab_adaptation.markdown(report)
    assert "| 100 (2 bases) | 0.8500 | 1.000 | 0.700 | 0.600 | 0.900 | 0.600 | 0.500 | 0.8800 |" in text
    assert "| 0 (2 bases) | 0.2000 |" in text
    assert "| 1 | 100 | 0.8000 | 1.000 | 0.600 | 0.500 | 0.900 | 0.500 | - | 0.970 | 0.8700 |" in text
    assert "| 2 | 100 | 0.9000 | 1.000 | 0.800 | 0.700 | 0.900 | 0.500 | - | - | 0.8900 |" in text


def test_predict_keeps_each_answer_with_its_file_when_sizes_differ(tmp_path, monkeypatch):
    # Another lab's cells come in many sizes; the signature runs one size at a time.
    import tensorflow as tf

    def serving_pixels(pixels):
        n, height = pixels.shape[0], pixels.shape[1]
        return {"probabilities": tf.one_hot(tf.fill([n], height - 9), 4),
                "atypicality": tf.fill([n], float(height))}

    monkeypatch.setattr(tf.saved_model, "load", lambda path: argparse.Namespace(
        signatures={"serving_pixels": serving_pixels}))
    mq.pixels_signature.cache_clear()
    heights = [9, 10, 9, 11, 12, 10, 9, 11] * 10  # 80 files: more than one batch of 64
    files = []
    for i, height in enumerate(heights):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", (7, height)).save(files[-1])
    probabilities, atypical = mq.predict("model", files)
    assert probabilities.argmax(axis=1).tolist() == [h - 9 for h in heights]
    assert atypical.tolist() == heights


def test_predict_loads_a_model_once_for_the_calls_that_measure_it(tmp_path, monkeypatch):
    import tensorflow as tf

    loads = []

    def load(path):
        loads.append(path)
        return argparse.Namespace(signatures={"serving_pixels": lambda pixels: {
            "probabilities": tf.one_hot(tf.zeros([pixels.shape[0]], tf.int32), 4)}})

    monkeypatch.setattr(tf.saved_model, "load", load)
    mq.pixels_signature.cache_clear()
    Image.new("RGB", (7, 7)).save(tmp_path / "a.png")
    for model in ("one", "one", "two", "two"):
        mq.predict(model, [tmp_path / "a.png"])
    assert loads == ["one", "two"]
    mq.pixels_signature.cache_clear()


def test_adaptation_measures_the_labs_non_cells_on_its_held_out_images(tmp_path, monkeypatch):
    from benchmarks import lab_adaptation
    from benchmarks.quality import derived

    lab = other_labs.load("lab", _lab(tmp_path / "lab", {n: 2 for n in NAMES}), NAMES)
    (tmp_path / "TEST").mkdir()
    calls = []

    def predict(pushed, files, transform=None):
        calls.append((pushed, list(files), transform))
        return np.tile([[0.9, 0.1, 0.0, 0.0]], (len(files), 1)), np.full(len(files), 2.0 if transform else 0.5)

    monkeypatch.setattr(mq, "predict", predict)
    monkeypatch.setattr(mq, "files_and_labels", lambda folder, names: (lab.files, lab.labels))
    out = lab_adaptation.measure("m", lab, tmp_path, NAMES, 0.8)
    assert ("m", lab.files, derived.not_a_cell) in calls
    assert out["lab"]["not_a_cell"]["review_flag_rate"] == 1.0 and out["lab"]["review_flag_rate"] == 0.0


def test_adaptation_remeasure_measures_each_stored_model_on_its_base_held_out_cells(tmp_path, monkeypatch):
    from benchmarks import lab_adaptation

    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    models = [tmp_path / name for name in ("base", "adapted")]
    for model in models:
        model.mkdir()
    seen = []
    monkeypatch.setattr(lab_adaptation, "measure", lambda pushed, held_out, *rest: seen.append(
        (pushed, sorted(held_out.files))) or {"lab": {"accuracy": 0.5}})
    monkeypatch.setattr("components.image_example_gen.image_reader.resolve_data_root", lambda d: d)
    report = {"lab": "lab", "lab_dir": str(lab), "class_names": NAMES, "review_threshold": 0.8,
              "rows": [{"base": 2, "reviewed": 0, "pushed": str(models[0])},
                       {"base": 2, "reviewed": 20, "pushed": str(models[1])}]}
    lab_adaptation.remeasure(report, str(tmp_path))
    cells = other_labs.load("lab", lab, NAMES)
    drawn = {cells.files[i] for i in lab_adaptation.draw(cells, 20, 2, NAMES)}
    assert [p for p, _ in seen] == [str(m) for m in models]
    assert seen[0][1] == seen[1][1] == sorted(set(cells.files) - drawn)
    assert [row["lab"]["accuracy"] for row in report["rows"]] == [0.5, 0.5]


def test_every_image_a_lab_ingest_reads_is_a_cell_here_webp_too(tmp_path):
    from components.image_example_gen import lab_sources

    assert set(lab_sources.IMAGE_EXTENSIONS) <= other_labs.IMAGE_SUFFIXES
    (tmp_path / "lab" / "MONOCYTE").mkdir(parents=True)
    Image.new("RGB", (12, 12), (90, 40, 160)).save(tmp_path / "lab" / "MONOCYTE" / "m.webp")
    cells = other_labs.load("lab", tmp_path / "lab", NAMES)
    assert [p.name for p in cells.files] == ["m.webp"]
    assert other_labs.discover(tmp_path) == {"lab": tmp_path / "lab"}


def test_an_image_in_two_files_is_one_cell_counted_once(tmp_path):
    lab = _lab(tmp_path / "lab", {"LYMPHOCYTE": 3, "NEUTROPHIL": 2})
    (lab / "LYMPHOCYTE" / "lymphocyte_2.bmp").write_bytes((lab / "LYMPHOCYTE" / "lymphocyte_0.bmp").read_bytes())
    cells = other_labs.load("lab", lab, NAMES)
    assert len(cells.files) == 4 and cells.labels.tolist() == [1, 1, 3, 3]
    assert cells.copies == [(lab / "LYMPHOCYTE" / "lymphocyte_2.bmp", lab / "LYMPHOCYTE" / "lymphocyte_0.bmp")]
    assert len(other_labs.load("lab", lab, NAMES, keep_copies=True).files) == 5

    result = other_labs.measure(_predict_by_name({"LYMPHOCYTE": [0, 1, 0, 0], "NEUTROPHIL": [0, 0, 0, 1]}),
                                cells, NAMES, 0.8)
    assert result["n"] == 4 and result["class_counts"]["LYMPHOCYTE"] == 2
    text = "\n".join(other_labs.table([("lab", "m", "1", result)], NAMES))
    assert "Counted once (the same bytes as an earlier file, so the same cell): LYMPHOCYTE/lymphocyte_2.bmp " \
           "(= LYMPHOCYTE/lymphocyte_0.bmp)." in text


def test_the_same_image_under_two_classes_is_one_error(tmp_path):
    lab = _lab(tmp_path / "lab", {"LYMPHOCYTE": 1, "NEUTROPHIL": 1})
    (lab / "NEUTROPHIL" / "neutrophil_0.bmp").write_bytes((lab / "LYMPHOCYTE" / "lymphocyte_0.bmp").read_bytes())
    with pytest.raises(ValueError, match="same image under two classes"):
        other_labs.load("lab", lab, NAMES)


def test_adaptation_measures_no_copy_of_a_drawn_image_and_draws_what_it_drew(tmp_path):
    from benchmarks import lab_adaptation

    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    cells = other_labs.load("lab", lab, NAMES, keep_copies=True)
    order = lab_adaptation.draw(cells, 20, seed=1, class_names=NAMES)
    drawn = cells.files[order[0]]
    twin = next(f for i, f in enumerate(cells.files) if i not in order and f.parent == drawn.parent)
    twin.write_bytes(drawn.read_bytes())  # the same image under another name, never drawn
    again = other_labs.load("lab", lab, NAMES, keep_copies=True)
    assert again.files == cells.files and lab_adaptation.draw(again, 20, seed=1, class_names=NAMES) == order
    held_out = lab_adaptation.held_out_cells(again, order)
    assert twin not in held_out.files and len(held_out.files) == len(cells.files) - 20 - 1


TECOM = Path(__file__).resolve().parents[3] / "shared" / "data" / "other-labs" / "tecom"


@pytest.mark.skipif(not TECOM.is_dir(), reason="no Tecom cells beside the checkout")
def test_the_stored_adaptation_reports_draws_are_what_they_were():
    # benchmarks/results/lab_adaptation.json was measured on these draws (seeds 1-3, 100 cells): the
    # order of the drawn files must stay, whatever is left out of the held-out cells.
    import hashlib

    from benchmarks import lab_adaptation

    cells = other_labs.load("tecom", TECOM, NAMES, keep_copies=True)
    assert len(cells.files) == 299
    golden = {1: "9aeaf1d86ae15f5d973863e0685faf4ef940f839964a12eedd2a42757a5b325a",
              2: "6b12180022817e900f159682b98de622c305f1d6ba9895be0f09b5f0fc71f091",
              3: "28ab227924428b70a67715e41c51f0a364bf5ef6c772f65c59494e32b7d56568"}
    held_out = {}
    for seed, digest in golden.items():
        order = lab_adaptation.draw(cells, 100, seed, NAMES)
        text = "\n".join(str(cells.files[i].relative_to(TECOM)) for i in order)
        assert hashlib.sha256(text.encode()).hexdigest() == digest, seed
        held_out[seed] = len(lab_adaptation.held_out_cells(cells, order).files)
    # LYMPHOCYTE/tecom_112.bmp and tecom_139.bmp are one image: one of them drawn for bases 1 and 2.
    assert held_out == {1: 198, 2: 198, 3: 199}
    # ... and both of them for base 3, from its 50th cell on.
    distinct = {(seed, n): lab_adaptation.distinct_cells(cells, lab_adaptation.draw(cells, 100, seed, NAMES)[:n])
                for seed in golden for n in (25, 50, 100)}
    assert [n for (seed, size), n in sorted(distinct.items()) if n != size] == [49, 99]
    assert distinct[3, 50] == 49 and distinct[3, 100] == 99


def test_adaptation_remeasure_of_an_older_report_checks_its_file_count_and_records_the_cells(tmp_path, monkeypatch):
    from benchmarks import lab_adaptation

    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    cells = other_labs.load("lab", lab, NAMES, keep_copies=True)
    order = lab_adaptation.draw(cells, 20, 2, NAMES)
    twin = next(f for i, f in enumerate(cells.files) if i not in order and f.parent == cells.files[order[0]].parent)
    twin.write_bytes(cells.files[order[0]].read_bytes())
    (tmp_path / "m").mkdir()
    monkeypatch.setattr(lab_adaptation, "measure", lambda *a: {"lab": {"accuracy": 0.5}})
    monkeypatch.setattr("components.image_example_gen.image_reader.resolve_data_root", lambda d: d)

    def report(held_out_cells):  # as an older report stored it: the files never drawn
        return {"lab": "lab", "lab_dir": str(lab), "class_names": NAMES, "review_threshold": 0.8,
                "held_out_cells": held_out_cells, "rows": [{"base": 2, "reviewed": 20, "pushed": str(tmp_path / "m")}]}

    with pytest.raises(ValueError, match="no longer holds the cells"):
        lab_adaptation.remeasure(report(33), str(tmp_path))
    stored = report(34)
    lab_adaptation.remeasure(stored, str(tmp_path))
    assert stored["rows"][0]["held_out_cells"] == 33 and stored["lab_cells"] == 54
    assert lab_adaptation.held_out_text(stored) == "33 cells never drawn (nor a copy of a drawn image)"
    stored["rows"].append({**stored["rows"][0], "base": 3, "held_out_cells": 34})
    assert lab_adaptation.held_out_text(stored) == \
        "cells never drawn (nor a copy of a drawn image): 33 for base 2, 34 for base 3"


def test_adaptation_report_shows_a_class_without_held_out_cells_and_means_over_the_others():
    from benchmarks import lab_adaptation

    def row(base, recalls):
        return {"base": base, "reviewed": 0, "lab": {"accuracy": 0.5, "review_flag_rate": 0.5, "errors_flagged": None,
                "per_class": {n: {"recall": r} for n, r in zip(NAMES, recalls)}},
                "test": {"accuracy": 0.9, "review_flag_rate": 0.1}}

    report = {"date": "d", "commit": "c" * 10, "lab": "lab", "lab_dir": "x", "held_out_cells": 9, "class_names": NAMES,
              "review_threshold": 0.8, "eval_fraction": 0.3, "adapt_steps": 300, "max_accuracy_drop": 0.01,
              "rows": [row(1, [None, 0.5, None, 1.0]), row(2, [0.2, 0.7, None, 1.0])]}
    text = lab_adaptation.markdown(report)
    assert "| 1 | 0 | 0.5000 | - | 0.500 | - | 1.000 |" in text
    assert "| 0 (2 bases) | 0.5000 | 0.200 (1 of 2) | 0.600 | - | 1.000 | 0.200 |" in text


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def _base(tmp_path) -> Path:
    """A pipeline output folder with one pushed version, as a base of the adaptation."""
    from pipeline.config import load_config

    config = load_config()
    (tmp_path / "base" / config.pipeline_name / "serving" / config.serving.model_name / "7").mkdir(parents=True)
    return tmp_path / "base"


def test_adaptation_refuses_bad_arguments_in_one_line_before_any_run(tmp_path, capsys, monkeypatch):
    from benchmarks import lab_adaptation

    monkeypatch.setattr(lab_adaptation, "measure", lambda *a: (_ for _ in ()).throw(AssertionError("measured")))
    base, empty = _base(tmp_path), tmp_path / "empty"
    empty.mkdir()
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    data = ["--data-dir", str(tmp_path)]
    for argv, message in [
        (["--base", f"one={base}", "--lab", f"x={lab}"], f"error: --base one={base}: SEED must be an integer"),
        (["--base", f"1={base}", "--base", f"1={base}", "--lab", f"x={lab}"], "error: --base 1 is given twice"),
        (["--base", f"1={empty}", "--lab", f"x={lab}"], f"error: --base 1={empty}: no pushed model under"),
        (["--base", f"1={base}", "--lab", f"x={empty}"], "error: --lab x: no images under"),
        (["--base", f"1={base}", "--lab", f"base={lab}"], "error: --lab base: a lab's name is"),
        (["--base", f"1={base}", "--lab", f"x={lab}", "--sizes", "0"], "error: --sizes: each size"),
        (["--base", f"1={base}", "--lab", f"x={lab}", "--sizes", "28"], "error: --sizes 28: x allows at most 27"),
        (["--base", f"1={base}", "--lab", f"x={lab}", "--sizes", "5", "--data-dir", str(tmp_path / "none")],
         "error: data directory not found"),
    ]:
        assert lab_adaptation.main(data + argv) == 2, argv
        assert _one_error_line(capsys).startswith(message)


def test_adaptation_report_only_without_a_report_or_its_models_is_one_line(tmp_path, capsys):
    from benchmarks import lab_adaptation

    assert lab_adaptation.main(["--report-only", "--out", str(tmp_path)]) == 2
    assert "needs a previous report" in _one_error_line(capsys)
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    (tmp_path / "lab_adaptation.json").write_text(json.dumps({
        "lab": "lab", "lab_dir": str(lab), "class_names": NAMES, "review_threshold": 0.8, "max_accuracy_drop": 0.01,
        "rows": [{"base": 1, "reviewed": 20, "pushed": str(tmp_path / "gone")}]}))
    argv = ["--report-only", "--remeasure", "--out", str(tmp_path), "--data-dir", str(tmp_path)]
    assert lab_adaptation.main(argv) == 2
    assert _one_error_line(capsys).startswith("error: --remeasure: it needs the stored pushed models; missing: ")


def test_a_plural_class_folder_is_one_error_naming_the_class(tmp_path):
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 1, "Neutrophils": 1})
    with pytest.raises(ValueError, match="class folder Neutrophils is not a class: rename it NEUTROPHIL"):
        other_labs.load("lab", lab, NAMES)


def _quality_main(monkeypatch, tmp_path, *argv) -> int:
    data = tmp_path / "data"
    for split in ("TRAIN", "TEST", "TEST_SIMPLE"):
        (data / split).mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(mq, "run_pipeline", lambda *a: (_ for _ in ()).throw(AssertionError("trained")))
    monkeypatch.setattr(mq.sys, "argv", ["model_quality.py", "--data-dir", str(data), "--out", str(tmp_path / "out"),
                                         "--report-only", *argv])
    return mq.main()


def test_quality_harness_refuses_a_lab_named_twice_in_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    _lab(root / "tecom", {"NEUTROPHIL": 1})
    mine, other = _lab(tmp_path / "mine", {"MONOCYTE": 1}), _lab(tmp_path / "other", {"MONOCYTE": 1})
    roots = ["--other-labs-root", str(root)]
    assert _quality_main(monkeypatch, tmp_path, *roots, "--other-lab", f"a={mine}", "--other-lab", f"a={other}") == 2
    assert _one_error_line(capsys) == "error: --other-lab a is given twice: name each lab once"
    assert _quality_main(monkeypatch, tmp_path, *roots, "--other-lab", f"tecom={mine}") == 2
    assert _one_error_line(capsys).startswith(f"error: --other-lab tecom={mine}: --other-labs-root {root} holds a "
                                              "source of that name")
    # The same folder under its own name is the same source, not a clash.
    assert other_labs.sources([("tecom", root / "tecom")], root)[0] == {"tecom": root / "tecom"}


def test_quality_harness_names_where_a_broken_source_came_from(tmp_path, monkeypatch, capsys):
    root = tmp_path / "root"
    _lab(root / "tecom", {"BASOPHIL": 1})   # found (it has class folders), but none of the model's classes
    assert _quality_main(monkeypatch, tmp_path, "--other-labs-root", str(root)) == 2
    assert _one_error_line(capsys) == (f"error: tecom: no images under {root / 'tecom'}/<{'|'.join(NAMES)}>/ "
                                       f"(a source found under --other-labs-root {root})")


def test_cross_lab_refuses_a_lab_named_twice(tmp_path, capsys):
    model = tmp_path / "7"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    lab = _lab(tmp_path / "mylab", {"LYMPHOCYTE": 1})
    assert cross_lab.main(["--model", str(model), "--other-lab", f"a={lab}", "--other-lab", f"a={lab}"]) == 2
    assert _one_error_line(capsys) == "error: --other-lab a is given twice: name each lab once"


def test_adaptation_rows_record_which_model_their_base_is(tmp_path, monkeypatch, capsys):
    from benchmarks import lab_adaptation
    from models.features import TRAINING_RECORD_FILE

    base = _base(tmp_path)
    pushed = next(base.rglob("7"))
    (pushed / TRAINING_RECORD_FILE).parent.mkdir(parents=True)
    (pushed / TRAINING_RECORD_FILE).write_text(json.dumps({"mode": "trained", "seed": 3, "code_version": "abc"}))
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    per_class = {n: {"recall": 0.5} for n in NAMES}
    monkeypatch.setattr(lab_adaptation, "measure", lambda *a: {
        "lab": {"accuracy": 0.5, "per_class": per_class, "review_flag_rate": 0.5, "errors_flagged": None},
        "test": {"accuracy": 0.9, "review_flag_rate": 0.1}})
    monkeypatch.setattr(lab_adaptation, "adapt_run", lambda *a: {"pushed": "adapted", "run_s": 1.0, "component_s": {}})
    out = tmp_path / "out"
    assert lab_adaptation.main(["--base", f"1={base}", "--lab", f"x={lab}", "--sizes", "5", "--data-dir", str(tmp_path),
                                "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    rows = json.loads((out / "lab_adaptation.json").read_text())["rows"]
    assert [(row["reviewed"], row["base_model"], row["base_training"]["seed"]) for row in rows] == \
        [(0, str(pushed), 3), (5, str(pushed), 3)]
    text = (out / "lab_adaptation.md").read_text()
    assert f"- base 1: {pushed} (training record: seed 3, code_version abc)" in text
    assert "its own training of the default recipe" in text and "seeds 1" not in text


def test_a_mean_over_fewer_seeds_than_all_says_how_many():
    results = [metrics.summarize(np.eye(4, dtype=np.float32)[predicted], np.arange(4), NAMES, 0.8)
               for predicted in ([0, 1, 2, 3], [0, 1, 2, 0], [1, 1, 2, 0])]
    assert results[0]["errors_flagged"] is None  # seed 1 makes no error
    mean = other_labs.mean_row(results, NAMES)
    assert mean["errors_flagged"] == 0.0 and mean["over"] == {"errors_flagged": 2} and mean["of"] == 3
    text = "\n".join(other_labs.table([("lab", "default", "mean", mean)], NAMES))
    assert "| 0.000 (2 of 3) | 0.000 | 0.750 |" in text


def test_an_image_that_does_not_decode_is_one_error_before_any_training(tmp_path):
    """Only listed and hashed up front, it reached PIL after the first seed had trained: a traceback."""
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 1, "NEUTROPHIL": 1})
    (lab / "NEUTROPHIL" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"^lab: NEUTROPHIL/broken.jpg is not a readable image"):
        other_labs.load("lab", lab, NAMES)


@pytest.mark.parametrize("folder, meant", [("NEUTROPHLI", "NEUTROPHIL"), ("Eosinofil", "EOSINOPHIL"),
                                           ("lymphocite", "LYMPHOCYTE")])
def test_a_misspelt_class_folder_is_one_error_not_a_class_the_model_does_not_know(tmp_path, folder, meant):
    """Read as an unknown class (as BASOPHIL is), its cells left accuracy and recall without a word."""
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 1, folder: 1})
    with pytest.raises(ValueError, match=f"class folder {folder} is not a class: rename it {meant}"):
        other_labs.load("lab", lab, NAMES)


def test_other_blood_cells_stay_classes_the_model_does_not_know(tmp_path):
    others = ["BASOPHIL", "MONOBLAST", "LYMPHOBLAST", "MYELOCYTE", "PROMONOCYTE", "PROLYMPHOCYTE",
              "SEG_NEUTROPHIL", "BAND_NEUTROPHIL", "BANDNEUTROPHIL"]
    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 1, **{name: 1 for name in others}})
    assert len(other_labs.load("lab", lab, NAMES).outside) == len(others)


def test_an_adaptation_run_trains_on_the_drawn_cells_of_its_lab_only(tmp_path, monkeypatch):
    """Only labs.dir was emptied: a lab the configuration names (the measured lab's whole folder under
    another name, say) trained too, and the held-out cells leaked into training."""
    from benchmarks import lab_adaptation
    from pipeline import local_runner
    from pipeline.config import load_config

    base = _base(tmp_path)
    (base / "bloodcell" / "metadata.sqlite").write_bytes(b"")
    given = []
    monkeypatch.setattr(local_runner, "main", lambda argv: given.append(argv) or 1)
    with pytest.raises(SystemExit):
        lab_adaptation.adapt_run(base, tmp_path / "work", "tecom", tmp_path / "drawn", str(tmp_path), 1)
    args = local_runner.parse_args(given[0])
    config = load_config(overrides=[f"labs.sources={{mylab: {tmp_path / 'all-of-tecom'}}}",
                                    *local_runner.overrides_from(args)])
    assert config.lab_sources() == {"tecom": str(tmp_path / "drawn")}


def test_adaptation_gate_column_needs_the_bases_own_row():
    """Without the base's 0-cell row the drop was taken as 0: a row at TEST 0.10 read 'passes'."""
    from benchmarks import lab_adaptation

    per_class = {n: {"recall": 0.5} for n in NAMES}
    row = {"base": 1, "reviewed": 25, "lab": {"accuracy": 0.5, "per_class": per_class, "review_flag_rate": 0.5,
                                               "errors_flagged": None}, "test": {"accuracy": 0.10, "review_flag_rate": 0.9}}
    report = {"date": "d", "commit": "c" * 10, "lab": "lab", "lab_dir": "x", "held_out_cells": 9, "class_names": NAMES,
              "review_threshold": 0.8, "eval_fraction": 0.3, "adapt_steps": 300, "max_accuracy_drop": 0.01,
              "rows": [row]}
    line = next(l for l in lab_adaptation.markdown(report).splitlines() if l.startswith("| 1 | 25 |"))
    assert "passes" not in line and "| 0.1000 | 0.900 | - |" in line, line


def test_adaptation_report_says_when_drawn_files_are_fewer_cells(tmp_path):
    """Two drawn files with the same bytes are one reviewed cell: the row's count of files overstated the
    cells reviewed, and the stored report said so nowhere."""
    from benchmarks import lab_adaptation

    lab = _lab(tmp_path / "lab", {"EOSINOPHIL": 4, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 30})
    cells = other_labs.load("lab", lab, NAMES, keep_copies=True)
    order = lab_adaptation.draw(cells, 20, seed=1, class_names=NAMES)
    first, other = cells.files[order[1]], cells.files[order[5]]  # the draw goes round the classes
    assert first.parent == other.parent
    other.write_bytes(first.read_bytes())  # the 2nd and the 6th file drawn are one cell
    lab_row = {"accuracy": 0.5, "per_class": {n: {"recall": 0.5} for n in NAMES}, "review_flag_rate": 0.5,
               "errors_flagged": None}
    report = {"date": "d", "commit": "c" * 10, "lab": "lab", "lab_dir": str(lab), "lab_cells": len(cells.files),
              "class_names": NAMES, "review_threshold": 0.8, "eval_fraction": 0.3, "adapt_steps": 300,
              "max_accuracy_drop": 0.01,
              "rows": [{"base": 1, "reviewed": n, "held_out_cells": 33, "lab": lab_row,
                        "test": {"accuracy": 0.9, "review_flag_rate": 0.1}} for n in (0, 5, 10, 20)]}
    lab_adaptation.count_distinct_reviewed(report)  # an older report: counted again from the draws
    assert [row.get("reviewed_distinct") for row in report["rows"]] == [None, 5, 9, 19]
    text = lab_adaptation.markdown(report)
    assert "files with the same bytes are one cell, so base 1's 10 are 9 cells, base 1's 20 are 19 cells" in text
    assert "| 1 | 20 | 0.5000 |" in text
