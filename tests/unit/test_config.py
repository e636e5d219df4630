from __future__ import annotations

import pytest

from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config


def test_default_config_loads_and_derives_paths():
    config = load_config()
    assert config.class_names == ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
    assert config.serving_base.endswith("/runs/bloodcell/serving/bloodcell")
    assert config.metadata_path.endswith("metadata.sqlite")
    assert "--direct_running_mode=multi_processing" in config.beam_args()


def test_overrides_apply_with_yaml_types():
    config = load_config(overrides=["training.epochs=7", "evaluation.min_accuracy=0.9", "beam.extra_args=[--runner=FlinkRunner]"])
    assert config.training.epochs == 7
    assert config.evaluation.min_accuracy == 0.9
    assert config.beam_args() == ["--runner=FlinkRunner"]  # a distributed runner replaces the local defaults


@pytest.mark.parametrize("override, message", [
    ("training.epochs=0", "training.epochs: Input should be greater than or equal to 1"),
    ("training.model=resnet", "training.model: Input should be 'default' or 'tutorial_cnn'"),
    ("evaluation.min_accuracy=1.5", "evaluation.min_accuracy: Input should be less than or equal to 1"),
    ("training.epoch=3", "training.epoch: Extra inputs are not permitted"),
    ("class_names=[A, A]", "class_names: Value error, needs at least two distinct class names"),
    # Accepted before, the run then stopped after the ingest, at the validation of its labels.
    ("class_names=[EOSINOPHIL, LYMPHOCYTE, MONOCYTE, NEUTROPHIL, BASOPHIL]",
     "class_names: Value error, must be the curated schema's label classes, in order (EOSINOPHIL, LYMPHOCYTE, "
     "MONOCYTE, NEUTROPHIL; pipeline/schema/schema.pbtxt)"),
    ("class_names=[LYMPHOCYTE, EOSINOPHIL, MONOCYTE, NEUTROPHIL]", "must be the curated schema's label classes, in order"),
    ("serving.model_name=a/b", "serving.model_name: String should match pattern"),
    ("serving.model_name=..", "serving.model_name: Value error, must name a folder"),
    ("serving.model_name=.", "serving.model_name: Value error, must name a folder"),
    ("training.epochs=[1", "--set training.epochs: '[1' is not a YAML value"),
    # A quote cut short (an easy slip in a timer's line) is not taken as text, quote and all.
    ("kubeflow.image=\"reg/x:1", "--set kubeflow.image: '\"reg/x:1' is not a YAML value"),
    ("labs.dir='/srv/labs", "--set labs.dir: ''/srv/labs' is not a YAML value"),
    ("training.early_stopping_patience=2", "training: Value error, early stopping needs val held out"),
    # Checked here, not after the ingest and Transform have run (Keras refuses it in the Trainer).
    ("training.seed=-1", "training.seed: Input should be greater than or equal to 0"),
    (f"training.seed={2**32}", "training.seed: Input should be less than or equal to 4294967295"),
    # A wrong type had raised AttributeError past the one-line errors.
    ("labs.sources=foo", "labs.sources: Value error, must map lab names to folders"),
    ("labs.sources=[a]", "labs.sources: Value error, must map lab names to folders"),
    # Accepted before, the run then failed in its last step, after pushing to TF Serving.
    ("browser.cdn_base=s3://bucket/cdn", "browser.cdn_base: Value error, 's3://bucket/cdn': a folder or gs://"),
    ("kubeflow.cdn_base=https://cdn.example/x", "kubeflow.cdn_base: Value error, 'https://cdn.example/x': a folder or gs://"),
])
def test_invalid_values_give_one_line_errors(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_set_value_is_taken_as_written_where_yaml_reads_it_otherwise():
    """`--set kubeflow.labs_dir=` (no labs) was YAML's null, refused as "config .../config.yaml:
    kubeflow.labs_dir: Input should be a valid string", blaming a file that is fine; @weekly, which the
    docs offer for kubeflow.schedule_cron, and a cron line starting with '*' were "not a YAML value"."""
    assert load_config(overrides=["kubeflow.labs_dir=gs://b/labs", "kubeflow.labs_dir="]).kubeflow.labs_dir == ""
    assert load_config(overrides=["kubeflow.schedule_cron=@weekly"]).kubeflow.schedule_cron == "@weekly"
    assert load_config(overrides=["kubeflow.schedule_cron=*/30 * * * * *"]).kubeflow.schedule_cron == "*/30 * * * * *"
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["training.epochs=many"])
    assert str(err.value).startswith("--set training.epochs: Input should be a valid integer"), err.value
    # A section's own error (its keys checked together) names the file and the --set under the section.
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["labs.sources.x.y=1"])
    assert str(err.value).startswith("config ") and " with --set labs.sources.x.y: labs.sources: " in str(err.value), err.value


def test_missing_or_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(bad)
    with pytest.raises(ConfigError, match="--set expects section.key=value"):
        load_config(DEFAULT_CONFIG, ["training.epochs"])


def test_curated_schema_label_domain_matches_config():
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from pipeline.config import SCHEMA_DIR

    schema = text_format.Parse((SCHEMA_DIR / "schema.pbtxt").read_text(), schema_pb2.Schema())
    config = load_config()
    domain = next(d for d in schema.string_domain if d.name == "label_name")
    assert list(domain.value) == config.class_names
    label = next(f for f in schema.feature if f.name == "label")
    assert (label.int_domain.min, label.int_domain.max) == (0, len(config.class_names) - 1)


def test_a_directory_or_non_utf8_file_as_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "config.yaml"
    binary.write_bytes(b"\xff\xfe\x00not text")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(binary)


def test_the_runner_reports_a_bad_override_in_one_line_with_exit_2(capsys):
    from pipeline import local_runner

    assert local_runner.main(["--set", "training.epochs=[1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --set training.epochs:") and "\n" not in err


def test_a_warmup_image_or_converter_that_cannot_serve_is_one_line_and_exit_2_before_the_run(capsys, tmp_path):
    """Found before anything runs: a bad warm-up image had failed the Trainer's export after the whole
    training, and a missing converter the TfjsPublisher after TF Serving already had the version."""
    from pipeline import local_runner

    not_image = tmp_path / "cell.jpg"
    not_image.write_text("not an image")
    runs = ["--output-dir", str(tmp_path / "runs")]
    assert local_runner.main([*runs, "--set", f"serving.warmup_images=['{tmp_path / 'none.jpg'}']"]) == 2
    assert local_runner.main([*runs, "--set", f"serving.warmup_images=['{not_image}']"]) == 2
    assert local_runner.main([*runs, "--set", "browser.converter=/no/such/tensorflowjs_converter"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert lines == [
        f"error: serving.warmup_images: no such file: {tmp_path / 'none.jpg'}",
        f"error: serving.warmup_images: {not_image}: the served model cannot decode it (Unknown image file format. "
        "One of JPEG, JPEG XL, PNG, GIF, BMP, WebP required.)",
        "error: tfjs converter not found: '/no/such/tensorflowjs_converter' (run through infra/env/run.sh, "
        "or set BLOODCELL_TFJS_CONVERTER / browser.converter)"]
    assert not (tmp_path / "runs").exists()


def test_more_warm_up_requests_than_tf_serving_loads_are_one_line_before_the_run(capsys, tmp_path):
    # TF Serving refuses a version whose warm-up file holds over 1,000 requests: one per image plus the
    # images in batches of 32, so 970 images make 1,001. Found only when TF Serving loaded the model.
    import tensorflow as tf

    from models.features import WARMUP_FILE
    from pipeline import kubeflow_runner, local_runner
    from serving.warmup import packaged_warmup_images, write_warmup_requests

    image = packaged_warmup_images()[0]
    for count, records in ((969, 1000), (970, 1001)):
        write_warmup_requests(str(tmp_path / f"m{count}"), [image] * count, "m")
        written = sum(1 for _ in tf.data.TFRecordDataset(str(tmp_path / f"m{count}" / WARMUP_FILE)))
        assert written == records
    many = "[" + ",".join([image] * 970) + "]"
    expected = ("error: serving.warmup_images: 970 images make 1001 warm-up requests; TF Serving loads a model "
                "with at most 1000")
    assert local_runner.main(["--output-dir", str(tmp_path / "runs"), "--set", f"serving.warmup_images={many}"]) == 2
    assert kubeflow_runner.main(["--set", f"serving.warmup_images={many}",
                                 "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert lines[0] == expected and lines[1].endswith(expected.split(": ", 1)[1])


def test_a_config_file_of_a_few_keys_keeps_the_rest_of_config_yaml(tmp_path):
    """Keys a --config file left out took the code's defaults (3 epochs, val held out, no data folder),
    not config.yaml's: a file of two keys trained another model without a word."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("training:\n  epochs: 5\nevaluation:\n  min_accuracy: 0.8\n")
    config, default = load_config(mine), load_config()
    assert (config.training.epochs, config.evaluation.min_accuracy) == (5, 0.8)
    assert config.training.model_dump(exclude={"epochs"}) == default.training.model_dump(exclude={"epochs"})
    assert config.data_dir == default.data_dir and config.labs == default.labs
    mine.write_text("training:\n  epoch: 5\n")
    with pytest.raises(ConfigError, match="training.epoch"):
        load_config(mine)


def test_a_map_in_a_config_file_replaces_config_yamls_whole(tmp_path, monkeypatch):
    """labs.sources is a map, not a section: merged key by key, a file could add labs but never drop one."""
    from pipeline import config as config_module

    base = tmp_path / "config.yaml"
    base.write_text(DEFAULT_CONFIG.read_text().replace("  sources: {}", "  sources: {old: /srv/old}"))
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG", base)
    mine = tmp_path / "mine.yaml"
    mine.write_text("labs:\n  sources: {}\nkubeflow:\n  trainer: {gpu_count: 0}\n")
    config = load_config(mine)
    assert config.labs.sources == {} and config.labs.dir == "labs"
    assert config.kubeflow.trainer.gpu_count == 0 and config.kubeflow.trainer.cpu_limit == 8


def test_a_section_whose_keys_are_all_commented_out_keeps_config_yamls(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("training:\n  # epochs: 5\n")
    assert load_config(mine).training == load_config().training


def test_an_empty_labs_dir_means_no_labs_folder_not_the_checkout(tmp_path):
    # "" had resolved to the repository root, and every top-level folder of the checkout became a lab.
    from components.image_example_gen import lab_sources

    config = load_config(overrides=['labs.dir=""'])
    assert config.labs_path == ""
    assert lab_sources.discover(config.labs_path) == {}


def test_a_file_url_is_a_folder():
    assert load_config(overrides=["browser.cdn_base=file:///srv/cdn"]).browser.cdn_base == "file:///srv/cdn"
