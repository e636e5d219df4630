"""The TFX pipeline, built from the configuration; the local and Kubeflow runners both call it."""
from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import tensorflow as tf
from tfx import v1 as tfx

import components.anomalies_gate
import components.image_example_gen
import components.pusher
import components.serving_check
import components.tfjs_publisher
import models
import models.transform
import serving.warmup
from components.anomalies_gate.component import AnomaliesGate
from components.image_example_gen import image_reader, lab_sources
from components.image_example_gen.component import image_example_gen
from components.pusher.component import Pusher
from components.serving_check.component import ServingCheck
from components.tfjs_publisher.component import TfjsPublisher
from models import features
from models.trainer.params import TrainerParams
from pipeline.code_version import code_fingerprint
from pipeline.config import SCHEMA_FILE, Config
from pipeline.eval_config import eval_config

PREPROCESSING_FN = "models.transform.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn.run_fn"


def trainer_params(config: Config) -> TrainerParams:
    t = config.training
    return TrainerParams(
        class_names=tuple(config.class_names), image_size=config.image_size,
        stain_normalisation=config.stain_normalisation, model=t.model, epochs=t.epochs,
        batch_size=t.batch_size, learning_rate=t.learning_rate,
        early_stopping_patience=t.early_stopping_patience, average_symmetries=t.average_symmetries,
        seed=t.seed, serving_model_name=config.serving.model_name,
        adapt_steps=config.labs.adapt_steps, adapt_learning_rate=config.labs.adapt_learning_rate,
        lab_share=config.labs.lab_share, retired_labs=tuple(config.labs.retired),
        lab_eval_fraction=config.labs.eval_fraction,
        warmup_images=tuple(config.resolve(p) for p in config.serving.warmup_images))


def example_gen_component(config: Config, data_root: str, labs_root: str):
    ingest = config.ingest
    return image_example_gen(
        data_root, class_names=list(config.class_names), val_fraction=ingest.val_fraction,
        hash_split_eval_fraction=ingest.hash_split_eval_fraction, val_split=ingest.val_split,
        max_pixels=ingest.max_pixels, max_bad_fraction=ingest.max_bad_fraction,
        code_version=code_fingerprint(components.image_example_gen, features),
        labs_root=labs_root, lab_sources=config.lab_sources(), lab_eval_fraction=config.labs.eval_fraction)


def schema_path(folder: str) -> str:
    """Where schema_copy puts the curated schema under `folder`: <sha256 prefix>/schema.pbtxt, a path
    named by its content. ImportSchemaGen's cache key (TFX's and KFP's) holds the file's path, not what
    it says: at one path, an edited schema would be taken from the cache and never reach validation or
    Transform."""
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()[:16]
    return f"{folder.rstrip('/')}/{digest}/{SCHEMA_FILE.name}"


def schema_copy(folder: str) -> str:
    """The curated schema copied to schema_path(folder), a local folder or a bucket prefix: written under
    a name of its own, then renamed, since two runs may write it at once."""
    path = schema_path(folder)
    if not tf.io.gfile.exists(path):
        tf.io.gfile.makedirs(os.path.dirname(path))
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        with tf.io.gfile.GFile(temporary, "wb") as f:
            f.write(SCHEMA_FILE.read_bytes())
        tf.io.gfile.rename(temporary, path, overwrite=True)
    return path


def warmup_files(config: Config) -> list[Path]:
    """The local warm-up image files the Trainer's export reads (the packaged ones when none is named)."""
    named = [config.resolve(p) for p in config.serving.warmup_images]
    return [Path(p) for p in named or serving.warmup.packaged_warmup_images() if "://" not in p]


def create_components(config: Config, data_root: str, serving_base: str, cdn_base: str, labs_root: str,
                      adapt: bool, schema_file: str) -> list:
    """`adapt`: labs are configured, so the Trainer gets the last blessed model to fine-tune. Without
    labs it gets none: a new blessing would otherwise change the Trainer's inputs and void its cache."""
    example_gen = example_gen_component(config, data_root, labs_root)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    inferred_schema = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                               infer_feature_shape=True)
    curated_schema = tfx.components.ImportSchemaGen(schema_file=schema_file)
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                                        schema=curated_schema.outputs["schema"])
    gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"],
                         code_version=code_fingerprint(components.anomalies_gate))
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=curated_schema.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, custom_config={"image_size": config.image_size,
                       "stain_normalisation": config.stain_normalisation,
                       # Also the served model's limit: the Transform graph is the serving signature's.
                       "max_pixels": config.ingest.max_pixels,
                       "code_version": code_fingerprint(models.transform, features)},
        splits_config=tfx.proto.SplitsConfig(analyze=["train"], transform=["train", "val", "eval"]))
    transform.add_upstream_node(gate)  # no training on data that failed validation
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        # With lab cells in the data, run_fn fine-tunes the last blessed model instead of starting over.
        base_model=baseline.outputs["model"] if adapt else None,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=curated_schema.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train", "val"] if config.training.train_on_val else ["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["val"]),  # val curves, review threshold; TEST is never seen here
        # The Trainer runs model code and writes serving's warm-up file from the warm-up images: all
        # enter its cache key (a remote image, on Kubeflow, by its path in the parameters).
        custom_config=trainer_params(config).to_custom_config(
            code_version=code_fingerprint(models, serving.warmup, *warmup_files(config))))
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"], eval_config=eval_config(config),
        example_splits=["eval"])
    # TFX's InfraValidator needs a tensorflow_model_server (none here) and KubeflowV2DagRunner cannot
    # compile it (TFX 1.21 raises NotImplementedError), so both runners check with ServingCheck.
    serving_check = ServingCheck(model=trainer.outputs["model"],
                                 code_version=code_fingerprint(components.serving_check, serving))
    # Checked first: a model that would not serve must never be blessed, since the last blessed model is
    # the next run's baseline (and, with labs, the model it adapts), pushed or not.
    evaluator.add_upstream_node(serving_check)
    # A model already served (a rerun's model, blessed again against itself) is not pushed again.
    pusher = Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_base)),
        custom_config={"code_version": code_fingerprint(components.pusher)})  # TFX's filesystem push ignores it
    tfjs_publisher = TfjsPublisher(
        pushed_model=pusher.outputs["pushed_model"], evaluation=evaluator.outputs["evaluation"],
        cdn_base=cdn_base, model_name=config.serving.model_name, quantization=config.browser.quantization,
        review_threshold=config.browser.review_threshold, class_names=config.class_names,
        image_size=config.image_size, pipeline_name=config.pipeline_name,
        converter=config.browser.converter, code_version=code_fingerprint(components.tfjs_publisher, features),
        min_lab_cells=config.labs.min_eval_cells)
    return [example_gen, statistics_gen, inferred_schema, curated_schema, example_validator, gate,
            transform, trainer, baseline, evaluator, serving_check, pusher, tfjs_publisher]


def create_pipeline(config: Config, metadata_connection_config=None, data_root: str | None = None,
                    pipeline_root: str | None = None, serving_base: str | None = None,
                    cdn_base: str | None = None, beam_args: list[str] | None = None,
                    labs_root: str | None = None, schema_file: str | None = None) -> tfx.dsl.Pipeline:
    """The pipeline; the local runner takes the locations from `config`, Kubeflow passes its own.
    schema_file: the curated schema where the run reads it (schema_copy); by default the checkout's."""
    data_root = data_root or image_reader.resolve_data_root(config.data_path)
    if labs_root is None:  # a local run: adapt when the labs folder holds a lab now
        labs_root = config.labs_path
        adapt = bool(lab_sources.discover(labs_root) or config.lab_sources())
    else:  # a cluster's bucket prefix, read at run time: labs may appear after compiling
        adapt = bool(labs_root or config.lab_sources())  # empty kubeflow.labs_dir: no labs, no base_model
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root or config.pipeline_root,
        components=create_components(config, data_root, serving_base or config.serving_base,
                                      cdn_base or config.cdn_base,
                                      labs_root, adapt, schema_file or str(SCHEMA_FILE)),
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_args if beam_args is not None else config.beam_args(),
    )
