"""End to end: the real pipeline (no mocked components) on the bundled sample, then the pushed
SavedModel classifies real JPEGs; a second run reuses the cached steps."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import tensorflow as tf

from components.image_example_gen import image_reader
from pipeline import local_runner
from serving.version_check import check_version
from testkit.images import CLASSES, make_dataset, sample_jpegs

pytestmark = pytest.mark.timeout(900)


def states(output: str) -> dict[str, str]:
    return dict(re.findall(r"^  (\w+)\s+(COMPLETE|CACHED|FAILED|RUNNING|NEW|CANCELED)\s", output, re.M))


def test_a_version_without_its_warm_up_file_is_named_so(pipeline_run, tmp_path):
    """It had read as 'warm-up file unreadable: {{function_node __wrapped__IteratorGetNext}}...'."""
    import shutil

    from models import features

    version = tmp_path / "1"
    shutil.copytree(pipeline_run.pushed, version)
    (version / features.WARMUP_FILE).unlink()
    assert check_version(str(version)) == [
        f"no warm-up file ({features.WARMUP_FILE}): the Trainer writes one into every version; without it "
        f"the first requests after a load are slow"]


def test_pipeline_pushes_a_model_that_classifies_real_jpegs(pipeline_run, capsys):
    assert pipeline_run.code == 0, pipeline_run.output
    assert "blessed: True" in pipeline_run.output
    pushed = pipeline_run.pushed
    # TF Serving's layout: <base>/<model_name>/<numeric version>/saved_model.pb
    assert os.path.dirname(pushed) == pipeline_run.serving_base
    assert os.path.basename(pushed).isdigit()
    assert os.path.exists(os.path.join(pushed, "saved_model.pb"))

    model = tf.saved_model.load(pushed)
    jpegs = [p.read_bytes() for p in (sample_jpegs("TEST", "MONOCYTE")[0], sample_jpegs("TEST", "NEUTROPHIL")[0])]
    result = model.signatures["serving_default"](images=tf.constant(jpegs))
    assert result["probabilities"].shape == (2, 4)
    assert tf.reduce_all(tf.abs(tf.reduce_sum(result["probabilities"], axis=1) - 1.0) < 1e-4)
    assert {n.decode() for n in result["class_name"].numpy()} <= set(CLASSES)
    assert [CLASSES[i] for i in result["class_id"].numpy()] == [n.decode() for n in result["class_name"].numpy()]

    # The Evaluator's signature reads serialized tf.Examples and agrees with the raw-bytes one.
    path = sample_jpegs("TEST", "MONOCYTE")[0]
    candidate = image_reader.Candidate(str(path), "TEST/MONOCYTE/x", "eval", "MONOCYTE", 2)
    from_examples = model.signatures["from_examples"](examples=tf.constant([image_reader.to_example(candidate, 10**8)]))
    assert tf.reduce_max(tf.abs(from_examples["probabilities"][0] - result["probabilities"][0])) < 1e-5

    # The browser signature takes decoded pixels, resizes with ops TensorFlow.js has, and agrees. The
    # pixels come from the served signature's own decoder: tf.io.decode_jpeg's default (fast) IDCT
    # differs, and passed only because the sample's model answers nearly alike for every image.
    from models.transform.preprocessing import decode_rgb

    pixels = tf.cast(tf.stack([decode_rgb(tf.constant(j)) for j in jpegs]), tf.float32)
    browser = model.signatures["serving_pixels"](pixels=pixels)
    assert tf.reduce_max(tf.abs(browser["probabilities"] - result["probabilities"])) < 1e-5

    # The version is what TF Serving and the clients expect, warm-up requests included.
    assert check_version(pushed) == []

    # Same inputs again: the data and training steps come from the cache. Another quantization asked for
    # leaves the published version as browsers cached it (it had failed the run: "versions are immutable").
    served = sorted(os.listdir(pipeline_run.serving_base))
    assert local_runner.main([*pipeline_run.args, "--set", "browser.quantization=uint8"]) == 0
    output = capsys.readouterr().out
    rerun = states(output)
    for node in ("FileBasedExampleGen", "StatisticsGen", "Transform", "Trainer"):
        assert rerun[node] == "CACHED", rerun
    # The Evaluator blesses the same model again, now against itself; it had been pushed again as a new
    # version, pushing the earlier, different one out of TF Serving's two.
    assert sorted(os.listdir(pipeline_run.serving_base)) == served, output
    assert re.search(rf"^pushed model: {re.escape(os.path.join(pipeline_run.serving_base, served[-1]))}$", output, re.M)
    assert "not pushed again" in output
    assert re.search(r"^note: version \d+ was already published with (float16|none) weights and stays so .*"
                     r"browser.quantization=uint8 applies from the next new model$", output, re.M), output


def test_bad_inputs_over_the_limit_stop_the_run_before_training(tmp_path, capsys, real_jpeg):
    data = make_dataset(tmp_path / "data", {"TRAIN": 3, "TEST": 1})
    (data / "TRAIN" / "MONOCYTE" / "cut.jpeg").write_bytes(real_jpeg[:1500])
    code = local_runner.main(["--data-dir", str(data), "--output-dir", str(tmp_path / "out"),
                           "--set", "ingest.max_bad_fraction=0"])
    captured = capsys.readouterr()
    assert code == 1
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("error: pipeline failed: IngestError: 1 of 17 inputs of the base dataset rejected")
    found = states(captured.out)
    assert found["FileBasedExampleGen"] == "FAILED" and "Trainer" not in found
    # No examples that could pass for finished ones; the report is kept where the message says.
    component_dir = tmp_path / "out" / "bloodcell" / "pipeline_root" / "FileBasedExampleGen"
    assert not list(component_dir.glob("examples/*/Split-*"))
    report = json.loads(open(error.rsplit("; see ", 1)[1]).read())
    assert report["status"] == "failed"
    assert report["rejected_inputs"][0]["rel_path"] == "TRAIN/MONOCYTE/cut.jpeg"


def test_missing_data_dir_is_a_one_line_usage_error(tmp_path, capsys):
    assert local_runner.main(["--data-dir", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: data directory not found: {tmp_path / 'nowhere'}"


def test_a_relabelled_file_reaches_the_examples_on_the_next_run(tmp_path):
    """Moving a TRAIN file to another class folder, size and modification time kept, re-runs the
    ExampleGen, and its example carries the new label."""
    from tfx import v1 as tfx

    from pipeline.config import load_config
    from pipeline.pipeline import example_gen_component

    data = make_dataset(tmp_path / "data", {"TRAIN": 4, "TEST": 2})
    config = load_config(overrides=[f"output_dir={tmp_path / 'out'}", "ingest.val_split=hash"])
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)

    def run_example_gen() -> str:
        pipeline = tfx.dsl.Pipeline(pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
                                    components=[example_gen_component(config, str(data), "")], enable_cache=True,
                                    metadata_connection_config=metadata, beam_pipeline_args=config.beam_args())
        tfx.orchestration.LocalDagRunner().run(pipeline)
        runs = sorted((tmp_path / "out" / "bloodcell" / "pipeline_root" / "FileBasedExampleGen" / "examples").iterdir(),
                      key=lambda p: int(p.name))
        return str(runs[-1])

    def labels(examples_dir: str) -> dict[str, str]:
        found = {}
        for split in image_reader.SPLITS:
            files = tf.io.gfile.glob(os.path.join(examples_dir, f"Split-{split}", "*.gz"))
            for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
                f = tf.train.Example.FromString(record.numpy()).features.feature
                found[f["source_path"].bytes_list.value[0].decode()] = f["label_name"].bytes_list.value[0].decode()
        return found

    first = run_example_gen()
    src = sorted((data / "TRAIN" / "MONOCYTE").iterdir())[0]
    stat = src.stat()
    dest = data / "TRAIN" / "NEUTROPHIL" / src.name
    os.rename(src, dest)
    os.utime(dest, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = run_example_gen()
    assert second != first, "the ExampleGen was cached: the relabel did not reach the examples"
    assert labels(second)[f"TRAIN/NEUTROPHIL/{src.name}"] == "NEUTROPHIL"
    assert f"TRAIN/MONOCYTE/{src.name}" not in labels(second)

    # The first copy is pruned (pipeline/retention.py); the file goes back: the step runs again, not
    # taken from the cache with its images gone (the folder and its ingest report stay).
    from pipeline import retention

    assert retention.prune_examples(config.metadata_path, keep=1).artifacts == 1
    assert not list(Path(first).glob("Split-*")) and Path(first, "ingest_report.json").is_file()
    os.rename(dest, src)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third = run_example_gen()
    assert third not in (first, second)
    assert labels(third)[f"TRAIN/MONOCYTE/{src.name}"] == "MONOCYTE"


def test_served_model_refuses_a_huge_header_without_decoding_it(pipeline_run, tmp_path):
    """A few dozen bytes declaring 30000 x 30000 pixels: INVALID_ARGUMENT from the serving signature,
    and the process's peak memory barely moves (decoding would take 2.7 GB)."""
    import subprocess
    import sys

    from testkit.bad_images import png_declaring

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))
    script = (
        "import resource, sys, tensorflow as tf\n"
        "model = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "model(images=tf.constant([open(sys.argv[3], 'rb').read()]))\n"  # warm: trace and allocate
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    model(images=tf.constant([open(sys.argv[2], 'rb').read()]))\n"
        "    print('ANSWERED')\n"
        "except tf.errors.InvalidArgumentError as err:\n"
        "    print('INVALID_ARGUMENT', 'image too large' in err.message)\n"
        "print('GROWTH_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    done = subprocess.run([sys.executable, "-c", script, pipeline_run.pushed, str(bomb),
                           str(sample_jpegs("TEST", "MONOCYTE")[0])], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "INVALID_ARGUMENT True" in done.stdout
    growth_kb = int(re.search(r"GROWTH_KB (\d+)", done.stdout).group(1))
    assert growth_kb < 200_000, f"peak memory grew by {growth_kb} kB"


def test_a_model_whose_warmup_is_corrupt_does_not_pass_the_serving_check(pipeline_run, tmp_path):
    """ServingCheck, the Pusher's infra blessing: a trained model with a corrupt warm-up file (TF
    Serving would fail to load it) stops the run before anything is pushed."""
    import shutil

    from components.serving_check.component import ServingCheckError, check_serving
    from models import features

    assert re.search(r"^  ServingCheck\s+COMPLETE", pipeline_run.output, re.M)
    model_dir = tmp_path / "Format-Serving"
    shutil.copytree(pipeline_run.pushed, model_dir)
    check_serving(str(model_dir))  # the pushed model passes
    warmup = model_dir / features.WARMUP_FILE
    data = bytearray(warmup.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64
    warmup.write_bytes(bytes(data))
    with pytest.raises(ServingCheckError, match="^the model would not serve, not pushed: warm-up"):
        check_serving(str(model_dir))


def test_a_model_whose_warmup_request_fails_does_not_pass(pipeline_run, tmp_path, capsys):
    import shutil

    from components.serving_check.component import ServingCheckError, check_serving
    from serving.warmup import write_warmup_requests
    from testkit.bad_images import png_declaring

    model_dir = tmp_path / "Format-Serving"
    shutil.copytree(pipeline_run.pushed, model_dir)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))
    write_warmup_requests(str(model_dir), [str(bomb)], "bloodcell")  # parses, but the model refuses it
    with pytest.raises(ServingCheckError, match="warm-up request 1 not answered"):
        check_serving(str(model_dir))
    # The version check a person runs on a pushed version runs the warm-up too: it had said "ok".
    from serving import version_check

    version = tmp_path / "7"
    model_dir.rename(version)
    assert version_check.main([str(version)]) == 1
    assert "warm-up request 1 not answered" in capsys.readouterr().out


def test_a_model_whose_browser_signature_answers_otherwise_does_not_pass(pipeline_run, tmp_path):
    """The browser signature rebuilds Transform's resize from ops TensorFlow.js has: nothing had checked,
    before a model was pushed and published, that it still answers as the served signature."""
    import shutil

    from components.serving_check.component import ServingCheckError, check_serving
    from models import features

    loaded = tf.saved_model.load(pipeline_run.pushed)
    served, browser = loaded.signatures[features.SERVING_SIGNATURE], loaded.signatures[features.BROWSER_SIGNATURE]
    module = tf.Module()
    module.loaded = loaded

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def images(images):
        return served(images=images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def pixels(pixels):  # drifted from the served signature (the sample's model answers nearly alike
        answer = dict(browser(pixels=pixels))  # for any input, so a changed resize would not show)
        answer[features.PROBABILITIES] = tf.nn.softmax(tf.math.log(answer[features.PROBABILITIES]) * 1.5)
        return answer

    model_dir = tmp_path / "Format-Serving"
    tf.saved_model.save(module, str(model_dir), signatures={features.SERVING_SIGNATURE: images,
                                                            features.BROWSER_SIGNATURE: pixels})
    shutil.copytree(Path(pipeline_run.pushed) / "assets.extra", model_dir / "assets.extra")
    with pytest.raises(ServingCheckError, match="the browser signature answers warm-up image 1 otherwise"):
        check_serving(str(model_dir))
