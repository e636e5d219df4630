"""The pipeline configuration: one YAML file every runner reads, validated on load."""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.features import BASE_SOURCE, DEFAULT_REVIEW_THRESHOLD, LAB_NAME_PATTERN

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "pipeline" / "config.yaml"
SCHEMA_DIR = REPO_ROOT / "pipeline" / "schema"
SCHEMA_FILE = SCHEMA_DIR / "schema.pbtxt"  # the curated schema, which validation enforces


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line meant for the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Section):
    val_fraction: float = Field(0.1, gt=0, lt=1)
    val_split: Literal["cell_groups", "hash"] = "cell_groups"   # see config.yaml
    hash_split_eval_fraction: float = Field(0.2, gt=0, lt=1)
    max_pixels: int = Field(25_000_000, gt=0)
    max_bad_fraction: float = Field(0.05, ge=0, le=1)


class TrainingConfig(_Section):
    model: Literal["default", "tutorial_cnn"] = "default"
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    early_stopping_patience: int = Field(0, ge=0)   # 0: off (see config.yaml)
    average_symmetries: bool = True                   # answer = mean over the crop's 8 rotations/mirrors
    train_on_val: bool = False                        # the final fit also learns val's cells (see config.yaml)
    seed: int = Field(42, ge=0, le=2**32 - 1)   # what Keras takes

    @model_validator(mode="after")
    def _stop_on_held_out_data(self):
        if self.train_on_val and self.early_stopping_patience:
            raise ValueError("early stopping needs val held out: set training.train_on_val=false "
                             "or training.early_stopping_patience=0")
        return self


class EvaluationConfig(_Section):
    min_accuracy: float = Field(0.0, ge=0, le=1)
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)


class ServingConfig(_Section):
    model_name: str = Field("bloodcell", pattern=r"^[A-Za-z0-9_.-]+$")
    # Images for TF Serving's warm-up requests (repo-relative or absolute locally, remote on Kubeflow);
    # empty: the four cells packaged with serving/warmup_images.
    warmup_images: list[str] = Field(default_factory=list)

    @field_validator("model_name")
    @classmethod
    def _one_folder(cls, name: str) -> str:
        # One folder name under the serving and CDN bases: "." and ".." would leave them.
        if name in (".", ".."):
            raise ValueError("must name a folder, not '.' or '..'")
        return name


def _folder_or_gcs(location: str) -> str:
    # What tf.io.gfile reads and writes here: a folder (file:// too) or Cloud Storage; no s3:// or
    # http:// file system is installed, and such a location would fail only in the step that writes it.
    if "://" in location and not location.startswith(("gs://", "file://")):
        raise ValueError(f"'{location}': a folder or gs://BUCKET/PREFIX (no other scheme is read or written)")
    return location


class BrowserConfig(_Section):
    """The tfjs model published for the web client (components/tfjs_publisher)."""
    cdn_base: str = ""                   # CDN origin (folder or gs://); empty: <run_dir>/cdn
    quantization: Literal["none", "float16", "uint8"] = "float16"
    review_threshold: float = Field(DEFAULT_REVIEW_THRESHOLD, ge=0, le=1)   # top probability under this: flag for review
    converter: str = ""                  # empty: $BLOODCELL_TFJS_CONVERTER, else tensorflowjs_converter

    _cdn_base = field_validator("cdn_base")(_folder_or_gcs)


class LabsConfig(_Section):
    """Labs' own reviewed cells (docs/labs.md): each lab is a source the model is adapted to."""
    dir: str = "labs"                    # every sub-folder is one lab: review exports (*.zip) and/or class folders; empty: none
    sources: dict[str, str] = {}         # more labs, name -> folder (make run ARGS="--lab-source NAME=DIR")
    eval_fraction: float = Field(0.3, gt=0, lt=1)   # of each lab's cells, by sha256: gate and figures, never trained
    adapt_steps: int = Field(600, ge=1)  # fine-tuning batches when the last blessed model is warm-started
    adapt_learning_rate: float = Field(3e-4, gt=0)
    lab_share: float = Field(0.5, gt=0, le=1)       # of each fine-tuning batch drawn from the labs' train cells
    min_eval_cells: int = Field(20, ge=1)           # fewer held-out cells: the lab's figure is shown as too few
    # Labs the last blessed model was adapted to and gated on, to be dropped on purpose: without this, a
    # run that no longer finds one of them (folder gone, share not mounted) refuses to start.
    retired: list[str] = []

    @field_validator("sources", mode="before")
    @classmethod
    def _named_folders(cls, sources):
        if sources is not None and not isinstance(sources, dict):
            raise ValueError("must map lab names to folders (NAME: DIR)")
        for name, folder in (sources or {}).items():
            if not re.match(LAB_NAME_PATTERN, str(name)) or name == BASE_SOURCE:
                raise ValueError(f"lab name '{name}' must be 1-64 letters, digits, '.', '_' or '-', "
                                 "starting with a letter or digit (and not 'base')")
            if not folder or not isinstance(folder, str):
                raise ValueError(f"lab '{name}' needs a folder (NAME=DIR)")
        return sources


class BeamConfig(_Section):
    direct_num_workers: int = Field(0, ge=0)
    extra_args: list[str] = []


class TrainerResources(_Section):
    cpu_limit: float = Field(8, gt=0)
    memory_limit_gib: float = Field(32, gt=0)
    # Vertex AI's accelerator names (NVIDIA_L4, NVIDIA_TESLA_T4, ...): Vertex AI runs this spec; an
    # open-source KFP backend would take nvidia.com/gpu.
    gpu_type: str = "NVIDIA_TESLA_T4"
    gpu_count: int = Field(1, ge=0)


class KubeflowConfig(_Section):
    """Where the pipeline runs on a cluster; the local runner ignores this section."""
    pipeline_root: str = "gs://YOUR-BUCKET/bloodcell/pipeline_root"
    data_dir: str = "gs://YOUR-BUCKET/blood-cells/dataset2-master/images"
    serving_base: str = "gs://YOUR-BUCKET/bloodcell/serving/bloodcell"
    image: str = "REGISTRY/bloodcell-pipeline:latest"
    cdn_base: str = "gs://YOUR-BUCKET/bloodcell/cdn"               # the CDN's origin bucket
    labs_dir: str = ""                   # e.g. gs://BUCKET/bloodcell/labs: one sub-prefix per lab; empty: no labs

    _cdn_base = field_validator("cdn_base")(_folder_or_gcs)
    endpoint: str = "http://localhost:8080"
    experiment: str = "bloodcell"
    schedule_cron: str = "0 0 3 * * 1"   # KFP cron has a seconds field: 03:00 every Monday
    output_file: str = "build/kubeflow/bloodcell-pipeline.yaml"
    trainer: TrainerResources = TrainerResources()
    beam_args: list[str] = []            # empty: the same Beam arguments as a local run, but beam_workers
    # DirectRunner processes per pod: a pod's CPU count is its node's (Beam's 0 would start one per core
    # of a large node, each with its own TensorFlow, and run out of memory).
    beam_workers: int = Field(4, ge=1)
    # The gate's least bar for the cluster's runs, which read a real dataset: evaluation.min_accuracy is
    # the bundled sample's (0), and a first model with no blessed one before it is blessed at any
    # accuracy. The higher of the two applies.
    min_accuracy: float = Field(0.8, ge=0, le=1)


class Config(_Section):
    pipeline_name: str = Field("bloodcell", pattern=r"^[A-Za-z0-9_-]+$")
    data_dir: str
    output_dir: str = "runs"
    keep_examples: int = Field(2, ge=0)  # local runs: the newest ingested/transformed image copies kept (0: all)
    class_names: list[str] = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
    image_size: int = Field(80, ge=16, le=1024)
    stain_normalisation: bool = False
    ingest: IngestConfig = IngestConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    serving: ServingConfig = ServingConfig()
    browser: BrowserConfig = BrowserConfig()
    labs: LabsConfig = LabsConfig()
    beam: BeamConfig = BeamConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()

    @field_validator("class_names")
    @classmethod
    def _distinct_classes(cls, names: list[str]) -> list[str]:
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError("needs at least two distinct class names")
        # Found here, not after the ingest, when the validation of its labels stops the run.
        curated = curated_classes()
        if names != curated:
            raise ValueError(f"must be the curated schema's label classes, in order ({', '.join(curated)}; "
                             f"{SCHEMA_FILE.relative_to(REPO_ROOT)}): change both together")
        return names

    # Derived locations: one layout for every runner.
    def resolve(self, path: str) -> str:
        """A configured path: remote and absolute ones as they are, others under the repo root."""
        if "://" in path:
            return path
        return str((REPO_ROOT / path).resolve()) if not os.path.isabs(path) else path

    @property
    def run_dir(self) -> str:
        return os.path.join(self.resolve(self.output_dir), self.pipeline_name)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.run_dir, "pipeline_root")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.run_dir, "metadata.sqlite")

    @property
    def serving_base(self) -> str:
        """TF Serving's base path; versions are pushed to <serving_base>/<version>/."""
        return os.path.join(self.run_dir, "serving", self.serving.model_name)

    @property
    def cdn_base(self) -> str:
        """The CDN origin; the tfjs model is published to <cdn_base>/<model_name>/<version>/."""
        return self.resolve(self.browser.cdn_base) if self.browser.cdn_base else os.path.join(self.run_dir, "cdn")

    @property
    def labs_path(self) -> str:
        """The labs folder; "" for none (resolved, "" would be the checkout itself)."""
        return self.resolve(self.labs.dir) if self.labs.dir else ""

    def lab_sources(self) -> dict[str, str]:
        return {name: self.resolve(folder) for name, folder in self.labs.sources.items()}

    @property
    def data_path(self) -> str:
        return self.resolve(self.data_dir)

    def beam_args(self, num_workers: int | None = None) -> list[str]:
        """num_workers: DirectRunner processes instead of beam.direct_num_workers."""
        if any(a.startswith("--runner") for a in self.beam.extra_args):
            return list(self.beam.extra_args)
        workers = self.beam.direct_num_workers if num_workers is None else num_workers
        return [
            "--runner=DirectRunner",
            # Beam's DirectRunner first tries PrismRunner, which downloads a binary from GitHub at run
            # time (fails offline, then falls back). This flag is one of the conditions that skip it;
            # these batch pipelines use no triggers.
            "--allow_unsafe_triggers",
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers}",  # 0: the cores where it runs
            *self.beam.extra_args,
        ]


@functools.cache
def curated_classes() -> list[str]:
    """The label_name domain of the curated schema: the classes the ingest's labels are checked against."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(SCHEMA_FILE.read_text(encoding="utf-8"), schema_pb2.Schema())
    return list(next(d for d in schema.string_domain if d.name == "label_name").value)


def _set_dotted(data: dict, dotted: str) -> None:
    if "=" not in dotted:
        raise ConfigError(f"--set expects section.key=value, got '{dotted}'")
    key, raw = dotted.split("=", 1)
    node = data
    parts = key.strip().split(".")
    if parts[:2] == ["labs", "sources"] and len(parts) > 3:  # a lab's name may hold dots (LAB_NAME_PATTERN)
        parts = [*parts[:2], ".".join(parts[2:])]
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
    if not raw.strip():  # `--set kubeflow.labs_dir=` empties a value; YAML would read null
        node[parts[-1]] = ""
        return
    try:
        node[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        if raw.lstrip().startswith(("[", "{", "'", '"')):  # a list, a map or a quote cut short
            raise ConfigError(f"--set {key}: '{raw}' is not a YAML value: {str(err).splitlines()[0]}") from None
        node[parts[-1]] = raw  # plain text that starts with a character YAML reserves: @weekly, */5 ...


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _merged(base: dict, over: dict, model: type[BaseModel]) -> dict:
    """base with over's keys in place, section by section; any other value (a list, a map such as
    labs.sources) is taken whole from over."""
    out = dict(base)
    for key, value in over.items():
        field = model.model_fields.get(key)
        kind = field.annotation if field else None
        section = kind if get_origin(kind) is None and isinstance(kind, type) and issubclass(kind, _Section) else None
        if section and value is None:  # a section header whose keys are all commented out
            value = {}
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merged(base[key], value, section) if section and both else value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Reads and validates a configuration; raises ConfigError with a one-line reason. Another file than
    config.yaml is read over it: the keys it leaves out keep config.yaml's values, not the code's."""
    path = Path(path or DEFAULT_CONFIG)
    data = _read_yaml(path)
    if path.resolve() != Path(DEFAULT_CONFIG).resolve():
        data = _merged(_read_yaml(Path(DEFAULT_CONFIG)), data, Config)
    for item in overrides or []:
        _set_dotted(data, item)
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(f"{_origin(where, overrides or [], path)} {where}: {first['msg']}{more}") from None


def _origin(where: str, overrides: list[str], path: Path) -> str:
    """Where the value at fault came from: the --set that gave it (or a key under it), else the config
    file; a section's own error (its keys checked together) names the file and the --set under it."""
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    if any(where == k or where.startswith(f"{k}.") for k in keys):
        return "--set"
    under = [k for k in keys if k.startswith(f"{where}.")]
    return f"config {path} with --set {under[-1]}:" if under else f"config {path}:"
