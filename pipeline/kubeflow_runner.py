"""Kubeflow runner: compiles the same pipeline to a KFP v2 spec (offline; no cluster needed).

    python -m pipeline.kubeflow_runner [--config FILE] [--set k=v]

Locations, the image and the Trainer's resources come from the `kubeflow` section of the
configuration. Submitting, scheduling and listing runs: pipeline/kubeflow_cli.py.
"""
from __future__ import annotations

import argparse
import os
import sys

from pipeline.config import DEFAULT_CONFIG, REPO_ROOT, Config, ConfigError, load_config

TRAINER_ID = "Trainer"
EXAMPLE_GEN_TASK = "FileBasedExampleGen"


def trainer_resources(config: Config):
    """The Trainer's container resources: CPU and memory limits and the GPU request."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
    t = config.kubeflow.trainer
    resources = spec(cpu_limit=t.cpu_limit, memory_limit=t.memory_limit_gib * 2**30 / 1e9)  # the spec counts GB
    if t.gpu_count:
        resources.accelerator.CopyFrom(spec.AcceleratorConfig(type=t.gpu_type, count=t.gpu_count))
    return resources


def build_pipeline(config: Config):
    from components.image_example_gen import image_reader
    from pipeline.pipeline import create_pipeline, schema_path

    kf = config.kubeflow
    # The higher bar: kubeflow.min_accuracy (the sample's 0 is no bar for a cluster) or one set for this run.
    bar = max(kf.min_accuracy, config.evaluation.min_accuracy)
    # browser.converter names a program of this machine; in the pod, the image's (BLOODCELL_TFJS_CONVERTER).
    config = config.model_copy(update={"evaluation": config.evaluation.model_copy(update={"min_accuracy": bar}),
                                       "browser": config.browser.model_copy(update={"converter": ""})})
    # Remote (check_for_kubeflow): not probed from here; the Kaggle TRAIN/TEST layout is assumed there.
    data_root = kf.data_dir if "://" in kf.data_dir else image_reader.resolve_data_root(kf.data_dir)
    pipeline = create_pipeline(config, data_root=data_root, pipeline_root=kf.pipeline_root,
                               serving_base=kf.serving_base, cdn_base=kf.cdn_base,
                               beam_args=kf.beam_args or config.beam_args(kf.beam_workers), labs_root=kf.labs_dir,
                               schema_file=schema_path(curated_schema_folder(config)))
    for component in pipeline.components:
        if component.id == TRAINER_ID:
            component.with_platform_config(trainer_resources(config))
    return pipeline


def curated_schema_folder(config: Config) -> str:
    """Where the cluster's runs read the curated schema: a path of the compiling machine means nothing
    in the container. kubeflow_cli's submit and schedule put it there (pipeline.schema_copy)."""
    return f"{config.kubeflow.pipeline_root.rstrip('/')}/curated_schema"


def output_path(config: Config) -> str:
    path = config.kubeflow.output_file
    return path if os.path.isabs(path) else str(REPO_ROOT / path)


def compile_pipeline(config: Config) -> str:
    """Writes the KFP v2 pipeline spec (YAML) and returns its path; needs no cluster or network."""
    from tfx import v1 as tfx

    path = output_path(config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=config.kubeflow.image),
        output_dir=os.path.dirname(path), output_filename=os.path.basename(path))
    runner.run(build_pipeline(config))
    if reads_labs(config):
        uncache_ingest(path)
    return path


def reads_labs(config: Config) -> bool:
    return bool(config.kubeflow.labs_dir or config.lab_sources())


def uncache_ingest(path: str) -> None:
    """Turns KFP's cache off for the ExampleGen task of the spec at `path`. Its cache key holds the
    task's parameters, not what the labs prefix holds (TFX's own driver runs there, not ours): cached,
    a scheduled run would never read a lab's new exports. So with labs every scheduled run reads them,
    and every step after the ingest runs too."""
    import yaml

    with open(path) as f:
        text = f.read()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    spec = yaml.safe_load(text)
    spec["root"]["dag"]["tasks"][EXAMPLE_GEN_TASK]["cachingOptions"] = {"enableCache": False}
    with open(path, "w") as f:
        f.write(header + yaml.safe_dump(spec, sort_keys=False))


def kfp_cron_problem(cron: str) -> str | None:
    """Why KFP would not run `cron` as meant, or None. KFP reads six fields, seconds first: a usual
    five-field line is taken, and means something else ("0 3 * * 1": minute 3 of every hour, in January)."""
    if cron.strip().startswith("@"):  # @weekly, @every 168h: robfig/cron's descriptors, which KFP takes
        return None
    fields = cron.split()
    if len(fields) != 6:
        return (f"'{cron}' has {len(fields)} field(s); KFP's cron has six fields, seconds first "
                f"(03:00 every Monday: '0 0 3 * * 1')")
    return None


def check_for_kubeflow(config: Config) -> None:
    """What a valid configuration may still hold that cannot work on a cluster; raises ConfigError."""
    from serving.warmup import warmup_count_problem

    too_many = warmup_count_problem(len(config.serving.warmup_images))
    if too_many:
        raise ConfigError(too_many)
    local = [p for p in config.serving.warmup_images if "://" not in p]
    if local:
        # The Trainer runs in the cluster's image: a path on the compiling machine means nothing there.
        raise ConfigError(f"serving.warmup_images must be remote (gs://...) on Kubeflow, or empty for the "
                          f"packaged images; got {local[0]}")
    kf = config.kubeflow
    for key, value in _locations(kf):
        # Empty: the local run's folder would be taken. Only labs_dir may be empty (no labs).
        if (value or key != "labs_dir") and "://" not in value:
            raise ConfigError(f"kubeflow.{key} must be remote (gs://...): the pipeline's pods have no folder "
                              f"of this machine; got '{value}'")
    # TFX writes a PipelineJob JSON for another suffix, which the upload and the labs' rewrite do not read.
    if "://" in kf.output_file:
        raise ConfigError(f"kubeflow.output_file '{kf.output_file}' must be a file of this machine (the compiler "
                          "writes it here)")
    if not kf.output_file.endswith((".yaml", ".yml")):
        raise ConfigError(f"kubeflow.output_file '{kf.output_file}' must end in .yaml or .yml")
    problem = kfp_cron_problem(kf.schedule_cron)
    if problem:
        raise ConfigError(f"kubeflow.schedule_cron {problem}")
    if "://" in config.labs.dir and config.labs.dir.rstrip("/") != kf.labs_dir.rstrip("/"):
        raise ConfigError(f"labs.dir is the local runs' labs folder; a cluster's runs read kubeflow.labs_dir "
                          f"(set it to {config.labs.dir})")
    local = {name: folder for name, folder in config.labs.sources.items() if "://" not in folder}
    if local:
        name = sorted(local)[0]
        raise ConfigError(f"labs.sources must be remote (gs://...) on Kubeflow, or put the lab under "
                          f"kubeflow.labs_dir; got {name}: {local[name]}")


def _locations(kf) -> list[tuple[str, str]]:
    """(key, value) of each kubeflow.* location the pipeline's pods read or write."""
    return [(key, getattr(kf, key)) for key in ("pipeline_root", "data_dir", "serving_base", "cdn_base", "labs_dir")]


PLACEHOLDERS = ("YOUR-BUCKET", "REGISTRY/")  # config.yaml's, to be replaced before a cluster runs it


def cluster_problem(config: Config) -> str | None:
    """Why a compiled spec must not go to a cluster yet, in one line, or None: config.yaml's placeholders
    (an image no registry holds, a bucket no one owns), or an image tag that can move, under which a
    rebuilt image would run new code behind old cache keys."""
    kf = config.kubeflow
    read_in_pods = [(f"kubeflow.{key}", value) for key, value in [("image", kf.image), *_locations(kf)]]
    read_in_pods += [(f"labs.sources.{name}", folder) for name, folder in sorted(config.labs.sources.items())]
    read_in_pods += [("kubeflow.beam_args", arg) for arg in kf.beam_args or config.beam_args(kf.beam_workers)]
    read_in_pods += [("serving.warmup_images", path) for path in config.serving.warmup_images]
    for key, value in read_in_pods:
        if any(p in value for p in PLACEHOLDERS):
            return f"{key} still holds config.yaml's placeholder: {value}"
    name = kf.image.rsplit("/", 1)[-1]
    if "@sha256:" not in kf.image and (":" not in name or name.endswith(":latest")):
        return (f"kubeflow.image {kf.image}: name a fixed tag or digest (a build's own tag, or @sha256:...), "
                "not one that moves")
    return None


def parse_with_config(parser: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, Config | None]:
    """The parsed arguments and the configuration they name; None (after one `error:` line) for a bad one."""
    parser.add_argument("--config", help=f"configuration YAML, read over {DEFAULT_CONFIG.name} (default: that alone)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.set)
        check_for_kubeflow(config)
        return args, config
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return args, None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kubeflow_runner", description=__doc__.splitlines()[0])
    _, config = parse_with_config(parser, argv)
    if config is None:
        return 2
    print(compiled_line(compile_pipeline(config), config))
    return 0


def compiled_line(package: str, config: Config) -> str:
    from pipeline.pipeline import schema_path

    return (f"compiled: {package} (its runs read the curated schema at "
            f"{schema_path(curated_schema_folder(config))}; submit and schedule put it there)")


if __name__ == "__main__":
    sys.exit(main())
