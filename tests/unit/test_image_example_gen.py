"""The ExampleGen executor in Beam: examples per split, the ingest report, and the bad-share stop."""
from __future__ import annotations

import io
import json
import os

import pytest
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.image_example_gen import executor as executor_lib
from components.image_example_gen import image_reader
from pipeline.config import load_config
from pipeline.pipeline import example_gen_component
from PIL import Image

from testkit.bad_images import png_declaring
from testkit.images import encoded, make_dataset


def run_executor(data_root, out_dir, max_bad_fraction, labs_root="", lab_eval_fraction=0.3):
    config = load_config(overrides=[f"ingest.max_bad_fraction={max_bad_fraction}", "ingest.val_fraction=0.25",
                                    "ingest.max_pixels=500000", f"labs.eval_fraction={lab_eval_fraction}"])
    component = example_gen_component(config, str(data_root), str(labs_root))
    props = {}
    for key, value in component.exec_properties.items():
        props[key] = proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    context = BaseBeamExecutor.Context(beam_pipeline_args=["--runner=DirectRunner"], tmp_dir=str(out_dir / "tmp"))
    executor_lib.Executor(context).Do({}, {"examples": [examples]}, props)
    return examples


def count_records(split_dir) -> int:
    files = tf.io.gfile.glob(os.path.join(split_dir, "*.gz"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.fixture
def dataset_with_bad_inputs(tmp_path, real_jpeg):
    root = make_dataset(tmp_path / "data", {"TRAIN": 6, "TEST": 2})
    (root / "TRAIN" / "EOSINOPHIL" / "zero.jpeg").write_bytes(b"")
    (root / "TRAIN" / "LYMPHOCYTE" / "half.jpeg").write_bytes(real_jpeg[:2000])
    (root / "TEST" / "MONOCYTE" / "page.jpg").write_bytes(b"<html></html>")
    (root / "TEST" / "NEUTROPHIL" / "huge.png").write_bytes(encoded(Image.new("RGB", (1000, 1000)), "PNG"))
    (root / "TRAIN" / "PLATELET").mkdir()
    (root / "TRAIN" / "PLATELET" / "p.jpeg").write_bytes(real_jpeg)
    (root / "TRAIN" / "NEUTROPHIL" / "bomb.png").write_bytes(png_declaring(20000, 20000))
    (root / "TRAIN" / "stray.jpeg").write_bytes(real_jpeg)
    return root


def test_examples_and_report(tmp_path, dataset_with_bad_inputs):
    examples = run_executor(dataset_with_bad_inputs, tmp_path / "gen" / "examples" / "7", max_bad_fraction=0.2)
    report = json.loads((tmp_path / "gen" / "examples" / "7" / executor_lib.REPORT_FILE).read_text())
    assert report["status"] == "ok"
    assert (report["inputs"], report["rejected"], report["examples"]) == (39, 7, 32)
    reasons = {r["rel_path"]: r["reason"] for r in report["rejected_inputs"]}
    assert reasons["TRAIN/EOSINOPHIL/zero.jpeg"] == "empty file (0 bytes)"
    assert reasons["TRAIN/LYMPHOCYTE/half.jpeg"].startswith("truncated or corrupt image data")
    assert reasons["TEST/MONOCYTE/page.jpg"].startswith("not an image")
    assert reasons["TRAIN/PLATELET/p.jpeg"] == "unknown class folder 'PLATELET'"
    assert reasons["TEST/NEUTROPHIL/huge.png"] == "image too large: 1000x1000 pixels exceeds the limit of 500000"
    assert reasons["TRAIN/NEUTROPHIL/bomb.png"].startswith("image too large: its header declares over")
    assert reasons["TRAIN/stray.jpeg"] == "not in a class folder"
    counts = {s: count_records(tmp_path / "gen" / "examples" / "7" / f"Split-{s}") for s in image_reader.SPLITS}
    assert counts == {s: report["splits"][s]["examples"] for s in image_reader.SPLITS}
    assert counts["eval"] == 8 and counts["train"] + counts["val"] == 24
    assert not (tmp_path / "gen" / "examples" / "7" / ".decode_rejects").exists()
    assert examples.get_int_custom_property("ingest_rejected") == 7


def test_too_many_bad_inputs_stop_with_one_line_and_no_examples(tmp_path, dataset_with_bad_inputs):
    with pytest.raises(image_reader.IngestError) as err:
        run_executor(dataset_with_bad_inputs, tmp_path / "gen" / "examples" / "7", max_bad_fraction=0.05)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("7 of 39 inputs of the base dataset rejected (17.9% > limit 5.0%;")
    report = json.loads(open(message.rsplit("; see ", 1)[1]).read())
    assert report["status"] == "failed" and report["rejected"] == 7
    assert not any(p.name.startswith("Split-") for p in (tmp_path / "gen" / "examples" / "7").iterdir())


def test_split_left_empty_by_bad_inputs_stops(tmp_path):
    root = make_dataset(tmp_path / "data", {"TRAIN": 6})
    for cls in ("EOSINOPHIL",):
        (root / "TEST" / cls).mkdir(parents=True)
        (root / "TEST" / cls / "broken.jpeg").write_bytes(b"")
    with pytest.raises(image_reader.IngestError, match=r"split\(s\) eval have no valid images"):
        run_executor(root, tmp_path / "gen" / "examples" / "7", max_bad_fraction=1.0)


def test_a_class_without_training_images_stops_before_training(tmp_path):
    # The Trainer would have an output it never learnt, and the review score no centre for that class.
    import shutil

    root = make_dataset(tmp_path / "data", {"TRAIN": 6, "TEST": 2})
    shutil.rmtree(root / "TRAIN" / "MONOCYTE")
    with pytest.raises(image_reader.IngestError, match=r"^no training images of MONOCYTE \(every class needs "
                                                       r"some\); see "):
        run_executor(root, tmp_path / "gen" / "examples" / "7", max_bad_fraction=1.0)


def test_a_labs_refused_files_are_listed_and_never_stop_the_run(tmp_path, real_jpeg):
    # The bad-share limit guards the base dataset (a broken mount, a wrong folder). A lab's export with
    # a few formats the pipeline does not read must not throw the lab's and the base's good cells away.
    root = make_dataset(tmp_path / "data", {"TRAIN": 6, "TEST": 2})
    lab = tmp_path / "labs" / "mylab"
    for cls in ("MONOCYTE", "NEUTROPHIL"):
        (lab / cls).mkdir(parents=True)
        # A real cell, but not the base's own bytes (a base image is refused as a lab cell).
        own = encoded(Image.open(io.BytesIO(real_jpeg)), "JPEG", quality=80)
        (lab / cls / "good.jpeg").write_bytes(own if cls == "MONOCYTE" else encoded(Image.new("RGB", (40, 30)), "JPEG"))
        for i in range(3):
            (lab / cls / f"phone{i}.heic").write_bytes(b"\0\0\0\x18ftypheic")
    run_executor(root, tmp_path / "gen" / "examples" / "7", max_bad_fraction=0.05, labs_root=tmp_path / "labs",
                 lab_eval_fraction=0.2)
    report = json.loads((tmp_path / "gen" / "examples" / "7" / executor_lib.REPORT_FILE).read_text())
    assert report["status"] == "ok" and report["rejected"] == 6 and report["rejected_fraction"] > 0.05
    assert report["labs"]["mylab"]["cells"] == 2 and report["labs"]["mylab"]["refused"] == 6
    assert report["lab_eval_fraction"] == 0.2  # what the next run's split is checked against


def test_a_lab_cell_that_is_a_base_image_is_refused(tmp_path):
    """A new user tries the review page on the bundled sample and drops the export into labs/: a base
    TEST image then trained as a lab cell (and scored the base gate), or a base training image scored
    the lab's."""
    root = make_dataset(tmp_path / "data", {"TRAIN": 6, "TEST": 2})
    test_image = sorted((root / "TEST" / "MONOCYTE").iterdir())[0]
    lab = tmp_path / "labs" / "mylab"
    (lab / "MONOCYTE").mkdir(parents=True)
    (lab / "MONOCYTE" / "copy.jpeg").write_bytes(test_image.read_bytes())
    (lab / "MONOCYTE" / "own.jpeg").write_bytes(encoded(Image.new("RGB", (40, 30), (90, 20, 140)), "JPEG"))
    run_executor(root, tmp_path / "gen" / "examples" / "8", max_bad_fraction=0.05, labs_root=tmp_path / "labs")
    report = json.loads((tmp_path / "gen" / "examples" / "8" / executor_lib.REPORT_FILE).read_text())
    refused = {r["rel_path"]: r["reason"] for r in report["rejected_inputs"]}
    assert refused["labs/mylab/MONOCYTE/copy.jpeg"] == executor_lib.BASE_COPY.format(
        os.path.relpath(test_image, root).replace(os.sep, "/"))
    assert report["labs"]["mylab"]["cells"] == 1 and report["labs"]["mylab"]["refused"] == 1


def test_a_dataset_without_the_layout_its_spec_assumed_stops_in_one_line(tmp_path):
    """A Kubeflow spec assumes the Kaggle TRAIN/TEST layout for a bucket (it is not probed when compiling).
    A flat bucket had been ingested, but the driver's patterns matched nothing: its fingerprint never
    changed, and a cached ingest never saw new images."""
    flat = tmp_path / "flat"
    for cls in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"):
        (flat / cls).mkdir(parents=True)
        (flat / cls / "a.jpeg").write_bytes(encoded(Image.new("RGB", (40, 30)), "JPEG"))
    config = load_config(overrides=["ingest.max_pixels=500000"])
    component = example_gen_component(config, "gs://bucket/blood-cells", "")
    props = {k: proto_utils.proto_to_json(v) if hasattr(v, "DESCRIPTOR") else v
             for k, v in component.exec_properties.items()}
    props["input_base"] = str(flat)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "out")
    context = BaseBeamExecutor.Context(beam_pipeline_args=["--runner=DirectRunner"], tmp_dir=str(tmp_path / "tmp"))
    with pytest.raises(image_reader.IngestError, match=f"{flat} has no TRAIN/ folder"):
        executor_lib.Executor(context).Do({}, {"examples": [examples]}, props)


def test_each_export_is_read_once_not_once_per_cell(tmp_path, monkeypatch):
    # The cells were spread one by one: a worker keeping two exports in memory read a whole export
    # again at nearly every cell of a lab with three (10 exports of 500 cells: about 4,000 reads).
    from components.image_example_gen import lab_sources
    from testkit import review_export
    from testkit.images import CLASSES, sample_jpegs

    reads = []
    original = lab_sources._read_whole

    def counted(path):
        reads.append(path)
        return original(path)

    monkeypatch.setattr(lab_sources, "_read_whole", counted)
    root = make_dataset(tmp_path / "data", {"TRAIN": 6, "TEST": 2})
    jpegs = [p for cls in CLASSES for p in sample_jpegs("TRAIN", cls)[6:15]]  # not the base's own images
    for i in range(3):
        review_export.write_export(tmp_path / "labs" / "mylab" / f"{i}.zip",
                                   [review_export.cell(p, CLASSES[j % 4]) for j, p in enumerate(jpegs[i::3])])
    run_executor(root, tmp_path / "gen" / "examples" / "1", max_bad_fraction=0.05, labs_root=tmp_path / "labs")
    report = json.loads((tmp_path / "gen" / "examples" / "1" / executor_lib.REPORT_FILE).read_text())
    assert report["labs"]["mylab"]["cells"] == 36, (report["labs"], report["rejected_inputs"])
    assert sorted(os.path.basename(p) for p in reads) == ["0.zip", "1.zip", "2.zip"]
