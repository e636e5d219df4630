"""The KFP v2 spec compiles offline from the same pipeline; submit and schedule send the right calls."""
from __future__ import annotations

import json
import types

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import kubeflow_cli, kubeflow_runner
from pipeline.config import load_config


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "spec.yaml"
    config = load_config(overrides=[f"kubeflow.output_file={out}", "kubeflow.image=registry.example/bc:1",
                                    "kubeflow.labs_dir=gs://bucket/bloodcell/labs"])
    path = kubeflow_runner.compile_pipeline(config)
    with open(path) as f:
        return config, path, yaml.safe_load(f)


def test_spec_parses_and_holds_every_component(compiled):
    _, _, doc = compiled
    spec = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    tasks = set(spec.root.dag.tasks)
    assert tasks == {"FileBasedExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen", "ExampleValidator",
                     "AnomaliesGate", "Transform", "Trainer", "Evaluator", "ServingCheck", "Pusher",
                     "TfjsPublisher",
                     # KFP v2 expresses the latest-blessed-model Resolver as two resolver tasks
                     "latest_blessed_model_resolver-model-resolver",
                     "latest_blessed_model_resolver-model-blessing-resolver"}
    assert "AnomaliesGate" in spec.root.dag.tasks["Transform"].dependent_tasks
    assert "Pusher" in spec.root.dag.tasks["TfjsPublisher"].dependent_tasks
    # The model is served and its warm-up answered before the Pusher pushes it.
    assert "ServingCheck" in spec.root.dag.tasks["Pusher"].dependent_tasks
    assert "Trainer" in spec.root.dag.tasks["ServingCheck"].dependent_tasks
    cdn_base = doc["root"]["dag"]["tasks"]["TfjsPublisher"]["inputs"]["parameters"]["cdn_base"]
    assert "gs://YOUR-BUCKET/bloodcell/cdn" in json.dumps(cdn_base)


def test_the_scheduled_run_reads_the_labs_prefix_and_warm_starts_the_trainer(compiled):
    config, _, doc = compiled
    tasks = doc["root"]["dag"]["tasks"]
    example_gen = json.dumps(tasks["FileBasedExampleGen"]["inputs"]["parameters"]["custom_config"])
    assert config.kubeflow.labs_dir.replace("/", "\\/") in example_gen or config.kubeflow.labs_dir in example_gen
    trainer = tasks["Trainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"]
    assert trainer["producerTask"] == "latest_blessed_model_resolver-model-resolver"


def test_with_labs_the_scheduled_run_never_takes_the_ingest_from_the_cache(compiled):
    # KFP's cache key holds the ExampleGen's parameters, not what the labs prefix holds: cached, the
    # weekly run would never read a lab's new export.
    _, path, doc = compiled
    tasks = doc["root"]["dag"]["tasks"]
    assert tasks["FileBasedExampleGen"]["cachingOptions"] == {"enableCache": False}
    assert tasks["Transform"]["cachingOptions"] == {"enableCache": True}
    with open(path) as f:
        assert f.readline().startswith("# PIPELINE DEFINITION")


def test_only_the_trainer_asks_for_a_gpu(compiled):
    _, _, doc = compiled
    executors = doc["deploymentSpec"]["executors"]
    with_gpu = {name for name, ex in executors.items()
                if ex.get("container", {}).get("resources", {}).get("accelerator")}
    assert with_gpu == {"Trainer_executor"}
    trainer = executors["Trainer_executor"]["container"]
    assert trainer["resources"]["accelerator"] == {"count": "1", "type": "NVIDIA_TESLA_T4"}
    # The spec's memory limit is in GB (KFP reads "32Gi" as 34.36): 32 GiB asked for, 32 GiB given.
    assert trainer["resources"]["cpuLimit"] == 8.0
    assert trainer["resources"]["memoryLimit"] == pytest.approx(32 * 2**30 / 1e9)
    images = {ex["container"]["image"] for ex in executors.values() if "container" in ex}
    assert images == {"registry.example/bc:1"}


class FakeKfpClient:
    """The small part of kfp.Client that the commands use, recording each call."""

    def __init__(self, recurring=()):
        self.calls = []
        self._recurring = list(recurring)

    def get_experiment(self, experiment_name):
        self.calls.append(("get_experiment", experiment_name))
        return types.SimpleNamespace(experiment_id="exp-1")

    def create_experiment(self, name):
        raise AssertionError("experiment exists")

    def create_run_from_pipeline_package(self, package, arguments, run_name, experiment_name, enable_caching,
                                         pipeline_root=None):
        self.calls.append(("run", package, run_name, experiment_name, enable_caching, pipeline_root))
        return types.SimpleNamespace(run_id="run-1")

    def list_recurring_runs(self, **kwargs):
        import inspect

        import kfp

        inspect.signature(kfp.Client.list_recurring_runs).bind(self, **kwargs)
        self.calls.append(("list_recurring", kwargs.get("experiment_id")))
        start, size = int(kwargs.get("page_token") or 0), kwargs.get("page_size", 10)
        more = start + size < len(self._recurring)
        return types.SimpleNamespace(recurring_runs=self._recurring[start:start + size] or None,
                                     next_page_token=str(start + size) if more else "")

    def delete_recurring_run(self, recurring_run_id):
        self.calls.append(("delete_recurring", recurring_run_id))

    def create_recurring_run(self, **kwargs):
        import inspect

        import kfp

        inspect.signature(kfp.Client.create_recurring_run).bind(self, **kwargs)  # kfp's own keywords only
        self.calls.append(("create_recurring", kwargs))
        return types.SimpleNamespace(display_name=kwargs["job_name"], recurring_run_id="rr-2")

    def list_runs(self, experiment_id, page_size, sort_by):
        self.calls.append(("list_runs", experiment_id, page_size, sort_by))
        return types.SimpleNamespace(runs=[types.SimpleNamespace(run_id="r1", state="SUCCEEDED",
                                                                 created_at="2026-11-26", display_name="x")])


def test_submit(compiled):
    config, path, _ = compiled
    client = FakeKfpClient()
    assert kubeflow_cli.submit(client, config, path, "nightly").run_id == "run-1"
    # None: each task caches as the spec says (the ingest, with labs, never); True would override it.
    # The pipeline root: TFX's spec file does not carry it, and KFP's default is its own object store.
    assert client.calls == [("run", path, "nightly", "bloodcell", None, config.kubeflow.pipeline_root)]
    kubeflow_cli.submit(client, config, path, "after-relabel", cache=False)
    assert client.calls[-1] == ("run", path, "after-relabel", "bloodcell", False, config.kubeflow.pipeline_root)


def test_schedule_replaces_the_recurring_run_of_the_same_name(compiled):
    config, path, _ = compiled
    old = types.SimpleNamespace(display_name="bloodcell-scheduled", recurring_run_id="rr-1")
    other = types.SimpleNamespace(display_name="someone-else", recurring_run_id="rr-9")
    client = FakeKfpClient([old, other])
    kubeflow_cli.schedule(client, config, path)
    assert ("delete_recurring", "rr-1") in client.calls and ("delete_recurring", "rr-9") not in client.calls
    # The new one first: a create that fails leaves the old schedule in place, not none.
    creates = [i for i, c in enumerate(client.calls) if c[0] == "create_recurring"]
    assert creates and creates[0] < client.calls.index(("delete_recurring", "rr-1"))
    create = dict(client.calls[creates[0]][1])
    assert create == {"experiment_id": "exp-1", "job_name": "bloodcell-scheduled", "cron_expression": "0 0 3 * * 1",
                      "pipeline_package_path": path, "max_concurrency": 1, "no_catchup": True,
                      "pipeline_root": config.kubeflow.pipeline_root}


def test_schedule_replaces_a_recurring_run_past_the_first_page(compiled):
    """Only the first 100 recurring runs were looked at: past them the old schedule stayed beside the new
    one, and both pushed every week."""
    config, path, _ = compiled
    others = [types.SimpleNamespace(display_name=f"other-{n}", recurring_run_id=f"rr-o{n}") for n in range(250)]
    old = types.SimpleNamespace(display_name="bloodcell-scheduled", recurring_run_id="rr-1")
    client = FakeKfpClient([*others, old])
    kubeflow_cli.schedule(client, config, path)
    assert [c for c in client.calls if c[0] == "delete_recurring"] == [("delete_recurring", "rr-1")]


def test_list_runs(compiled):
    config, _, _ = compiled
    client = FakeKfpClient()
    assert kubeflow_cli.list_runs(client, config, 5) == ["r1  SUCCEEDED  2026-11-26  x"]
    assert client.calls[-1] == ("list_runs", "exp-1", 5, "created_at desc")


def test_unreachable_endpoint_is_one_line(tmp_path, capsys):
    code = kubeflow_cli.main(["list", "--set", "kubeflow.endpoint=http://127.0.0.1:9",
                              "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Kubeflow Pipelines at http://127.0.0.1:9: ") and "\n" not in err


def test_a_local_warmup_image_is_refused_in_one_line(tmp_path, capsys):
    """The Trainer runs in the cluster's image, where a path of the compiling machine does not exist."""
    code = kubeflow_runner.main(["--set", "serving.warmup_images=[data/sample/TRAIN/MONOCYTE/_0_1173.jpeg]",
                                 "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: serving.warmup_images must be remote") and "\n" not in err
    assert not (tmp_path / "s.yaml").exists()


def test_without_labs_the_trainer_is_not_wired_to_the_blessed_model(tmp_path):
    # A new blessing would otherwise change the Trainer's inputs and void its cache on every scheduled run.
    config = load_config(overrides=[f"kubeflow.output_file={tmp_path / 'spec.yaml'}",
                                    "kubeflow.image=registry.example/bc:1"])
    with open(kubeflow_runner.compile_pipeline(config)) as f:
        tasks = yaml.safe_load(f)["root"]["dag"]["tasks"]
    assert "base_model" not in tasks["Trainer"]["inputs"].get("artifacts", {})
    assert tasks["FileBasedExampleGen"]["cachingOptions"] == {"enableCache": True}


def test_a_local_lab_source_is_refused_in_one_line(tmp_path, capsys):
    """A folder of the compiling machine does not exist in the cluster, where the ingest runs."""
    (tmp_path / "mylab").mkdir()
    code = kubeflow_runner.main(["--set", f"labs.sources={{mylab: {tmp_path / 'mylab'}}}",
                                 "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith("error: labs.sources must be remote (gs://...) on Kubeflow")
    assert not (tmp_path / "s.yaml").exists()


# What an operator fills in before submitting: config.yaml's placeholders would be refused.
READY = ["--set", "kubeflow.data_dir=gs://lab-bucket/data", "--set", "kubeflow.serving_base=gs://lab-bucket/serving",
         "--set", "kubeflow.cdn_base=gs://lab-bucket/cdn",
         "--set", "kubeflow.image=registry.example/bloodcell-pipeline:2026.12.07"]


def test_submit_and_schedule_refuse_placeholders_and_a_moving_image_tag(tmp_path, capsys, monkeypatch):
    """config.yaml's REGISTRY/...:latest and gs://YOUR-BUCKET went into a spec that was submitted: pods
    that could not pull their image, or, with :latest, new code run behind old cache keys."""
    monkeypatch.setattr(kubeflow_cli, "make_client", lambda config: FakeKfpClient())
    out = ["--set", f"kubeflow.output_file={tmp_path / 's.yaml'}", "--set", f"kubeflow.pipeline_root=ram://{tmp_path.name}/r"]
    for command in ("submit", "schedule"):
        assert kubeflow_cli.main([command, *out]) == 2
        assert capsys.readouterr().err.strip() == ("error: kubeflow.image still holds config.yaml's placeholder: "
                                                   "REGISTRY/bloodcell-pipeline:latest")
    for image in ("registry.example/bloodcell-pipeline:latest", "registry.example:5000/bloodcell-pipeline"):
        assert kubeflow_cli.main(["submit", *out, *READY, "--set", f"kubeflow.image={image}"]) == 2
        assert "name a fixed tag or digest" in capsys.readouterr().err
    assert kubeflow_cli.main(["submit", *out, *READY[:-2]]) == 2 and "REGISTRY/" in capsys.readouterr().err
    assert kubeflow_cli.main(["submit", *out, *READY[2:]]) == 2 and "kubeflow.data_dir" in capsys.readouterr().err
    # Elsewhere in the settings the pods read: refused too (the ingest had reported "folder not found").
    for setting in ("labs.sources={x: gs://YOUR-BUCKET/labs/x}", "kubeflow.beam_args=[--temp_location=gs://YOUR-BUCKET/t]",
                    "beam.extra_args=[--temp_location=gs://YOUR-BUCKET/t]",  # the pods' when kubeflow.beam_args is empty
                    "serving.warmup_images=[gs://YOUR-BUCKET/w.jpg]"):
        assert kubeflow_cli.main(["submit", *out, *READY, "--set", setting]) == 2
        assert "still holds config.yaml's placeholder: " in capsys.readouterr().err
    assert kubeflow_cli.main(["submit", *out, *READY]) == 0
    digest = "registry.example/bloodcell-pipeline@sha256:" + "a" * 64
    assert kubeflow_cli.main(["submit", *out, *READY, "--set", f"kubeflow.image={digest}"]) == 0
    assert kubeflow_cli.main(["compile", "--set", f"kubeflow.output_file={tmp_path / 'c.yaml'}"]) == 0  # to look at


def test_the_spec_reads_the_curated_schema_from_the_pipeline_root_by_its_content(compiled, tmp_path, monkeypatch):
    # A path of the compiling machine means nothing in the cluster's container; and KFP's cache key
    # holds the path, so an edited schema must come under a new one.
    from pipeline import pipeline as pipeline_lib
    from pipeline.config import REPO_ROOT

    config, _, doc = compiled
    params = doc["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"]["parameters"]
    schema_file = params["schema_file"]["runtimeValue"]["constantValue"]["stringValue"]
    assert str(REPO_ROOT) not in json.dumps(doc)
    assert schema_file == pipeline_lib.schema_path(f"{config.kubeflow.pipeline_root}/curated_schema")
    assert schema_file.startswith("gs://YOUR-BUCKET/bloodcell/pipeline_root/curated_schema/")

    # submit puts it there before the run starts (TensorFlow's in-memory file system stands in for the bucket).
    import tensorflow as tf

    root = f"ram://{tmp_path.name}/root"
    monkeypatch.setattr(kubeflow_cli, "make_client", lambda config: FakeKfpClient())
    assert kubeflow_cli.main(["submit", "--set", f"kubeflow.pipeline_root={root}",
                              "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}", *READY]) == 0
    with open(tmp_path / "s.yaml") as f:
        named = yaml.safe_load(f)["root"]["dag"]["tasks"]["ImportSchemaGen"]["inputs"]["parameters"]
    with tf.io.gfile.GFile(named["schema_file"]["runtimeValue"]["constantValue"]["stringValue"], "rb") as f:
        assert f.read() == pipeline_lib.SCHEMA_FILE.read_bytes()


def test_a_schema_that_cannot_be_put_in_place_is_one_line(tmp_path, capsys, monkeypatch):
    blocked = "nosuch://bucket/root"  # a file system this machine cannot write, as a bucket without credentials
    monkeypatch.setattr(kubeflow_cli, "make_client", lambda config: FakeKfpClient())
    assert kubeflow_cli.main(["submit", "--set", f"kubeflow.pipeline_root={blocked}",
                              "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}", *READY]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: the curated schema could not be put at {blocked}/curated_schema/") and "\n" not in err


def test_a_pod_starts_a_bounded_number_of_beam_workers(compiled):
    # In a pod Beam's 0 ("one per core") counts the node's cores: dozens of processes, each with its own
    # TensorFlow, on a large node.
    config, _, doc = compiled
    args = [a for e in doc["deploymentSpec"]["executors"].values() for a in e.get("container", {}).get("args", [])]
    workers = [a for a in args if a.startswith("--direct_num_workers=")]
    assert workers and set(workers) == {f"--direct_num_workers={config.kubeflow.beam_workers}"}
    assert config.beam_args()[3] == "--direct_num_workers=0"  # a local run still takes its cores


def test_compiling_alone_names_where_the_runs_read_the_curated_schema(tmp_path, capsys):
    # After `compile` alone the schema is the user's to copy: to the path the spec names.
    from pipeline import pipeline as pipeline_lib

    for main in (kubeflow_runner.main, lambda argv: kubeflow_cli.main(["compile", *argv])):
        assert main(["--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"]) == 0
        expected = pipeline_lib.schema_path("gs://YOUR-BUCKET/bloodcell/pipeline_root/curated_schema")
        assert f"its runs read the curated schema at {expected};" in capsys.readouterr().out


@pytest.mark.parametrize("key, value", [("kubeflow.data_dir", "data/sample"), ("kubeflow.serving_base", "runs/serving"),
                                        ("kubeflow.cdn_base", "/srv/cdn"), ("kubeflow.pipeline_root", "runs/root"),
                                        ("kubeflow.labs_dir", "labs"), ("kubeflow.cdn_base", "''"),
                                        ("kubeflow.pipeline_root", "''")])
def test_a_location_of_the_compiling_machine_is_refused_in_one_line(tmp_path, capsys, key, value):
    """It was baked into the spec (or, for a data folder missing here, a traceback): a pod has none."""
    code = kubeflow_runner.main(["--set", f"{key}={value}", "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {key} must be remote") and "\n" not in err, err
    assert not (tmp_path / "s.yaml").exists()


@pytest.mark.parametrize("settings, message", [
    # Compiled with exit 0, then never read: the cluster's runs read kubeflow.labs_dir alone.
    (["labs.dir=gs://lab-bucket/labs"], "error: labs.dir is the local runs' labs folder; a cluster's runs read "
                                        "kubeflow.labs_dir (set it to gs://lab-bucket/labs)"),
    # TFX wrote a PipelineJob JSON for it, and the labs' spec rewrite raised KeyError: 'root'.
    (["kubeflow.labs_dir=gs://lab-bucket/labs", "kubeflow.output_file=build/spec.json"],
     "error: kubeflow.output_file 'build/spec.json' must end in .yaml"),
    # Became a local folder named gs:.
    (["kubeflow.output_file=gs://b/spec.yaml"], "error: kubeflow.output_file 'gs://b/spec.yaml' must be a file of this machine"),
])
def test_a_setting_a_cluster_cannot_use_is_refused_in_one_line(tmp_path, capsys, settings, message):
    out = [] if "output_file" in settings[-1] else ["--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"]
    code = kubeflow_runner.main([arg for setting in settings for arg in ("--set", setting)] + out)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err, err
    assert not (tmp_path / "s.yaml").exists()


def test_the_local_runs_converter_is_not_baked_into_the_spec(tmp_path):
    """A converter path set for local runs went into the spec: the publisher then failed in the pod ("tfjs
    converter not found") after the Pusher had pushed, leaving TF Serving and the CDN on different versions."""
    config = load_config(overrides=[f"kubeflow.output_file={tmp_path / 'spec.yaml'}", "kubeflow.image=registry.example/bc:1",
                                    "browser.converter=/home/me/venv/bin/tensorflowjs_converter"])
    with open(kubeflow_runner.compile_pipeline(config)) as f:
        params = yaml.safe_load(f)["root"]["dag"]["tasks"]["TfjsPublisher"]["inputs"]["parameters"]
    assert params["converter"]["runtimeValue"]["constantValue"]["stringValue"] == ""  # the image's own


@pytest.mark.parametrize("cron", ["0 3 * * 1", "0 0 3 * * 1 2026", "x"])
def test_a_cron_expression_without_its_seconds_field_is_refused(tmp_path, capsys, cron):
    """KFP reads six fields, seconds first: a usual five-field "0 3 * * 1" ran at minute 3 of every hour
    of every day in January."""
    assert kubeflow_runner.main(["--set", f"kubeflow.schedule_cron={cron}",
                                 "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"]) == 2
    assert "six fields" in capsys.readouterr().err
    assert kubeflow_cli.main(["schedule", "--cron", cron, "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"]) == 2
    assert "six fields" in capsys.readouterr().err


def test_cron_descriptors_pass_and_a_local_run_ignores_the_schedule():
    assert kubeflow_runner.kfp_cron_problem("@weekly") is None and kubeflow_runner.kfp_cron_problem("@every 168h") is None
    assert load_config(overrides=["kubeflow.schedule_cron=0 3 * * 1"]).kubeflow.schedule_cron == "0 3 * * 1"


def test_a_remote_dataset_is_fingerprinted_as_the_kaggle_layout(compiled):
    """Probed from the compiling machine, a bucket it cannot read looked flat: the driver then
    fingerprinted class folders, not images."""
    _, _, doc = compiled
    input_config = json.dumps(doc["root"]["dag"]["tasks"]["FileBasedExampleGen"]["inputs"]["parameters"]["input_config"])
    assert "TRAIN/*/*" in input_config and "TEST/*/*" in input_config


def test_list_does_not_compile(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(kubeflow_cli, "make_client", lambda config: FakeKfpClient())
    assert kubeflow_cli.main(["list", "--set", f"kubeflow.output_file={tmp_path / 's.yaml'}"]) == 0
    assert not (tmp_path / "s.yaml").exists()


def test_the_clusters_gate_has_a_bar_of_its_own(compiled, tmp_path):
    """evaluation.min_accuracy is the bundled sample's bar (0): a cluster run reads a real dataset, and
    its first model, with no blessed model to be compared with, was blessed at any accuracy."""
    config, _, spec = compiled

    def bars(spec):
        params = spec["root"]["dag"]["tasks"]["Evaluator"]["inputs"]["parameters"]
        found = set()

        def walk(node):
            if isinstance(node, dict):
                if "lower_bound" in node:
                    bound = node["lower_bound"]  # a DoubleValue: a number in JSON
                    found.add(bound["value"] if isinstance(bound, dict) else bound)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(json.loads(params["eval_config"]["runtimeValue"]["constantValue"]["stringValue"]))
        return found

    assert config.evaluation.min_accuracy == 0 and bars(spec) == {0.8}
    for overrides, bar in ((["kubeflow.min_accuracy=0.85"], 0.85), (["evaluation.min_accuracy=0.9"], 0.9)):
        other = load_config(overrides=[f"kubeflow.output_file={tmp_path / 'spec.yaml'}", *overrides])
        with open(kubeflow_runner.compile_pipeline(other)) as f:
            assert bars(yaml.safe_load(f)) == {bar}, overrides
