"""What a run produced, read back from the metadata store: per-component time and state, the eval
metrics, the blessing and where the model was pushed."""
from __future__ import annotations

import dataclasses
import json
import os

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components.image_example_gen import lab_sources
from components.pusher.executor import ALREADY_SERVED
from components.tfjs_publisher.executor import QUANTIZATION_NOTE
from components.tfjs_publisher.evaluation import (load_confusion_matrix, load_metrics, load_source_metrics,
                                                  per_class_metrics, readable_metrics)
from models.features import BASE_SOURCE, SOURCE_KEY

_STATE = metadata_store_pb2.Execution.State


@dataclasses.dataclass
class ComponentRun:
    node: str
    state: str
    seconds: float


@dataclasses.dataclass
class RunSummary:
    components: list[ComponentRun]
    blessed: bool | None = None
    blessing_reason: str = "the Evaluator did not run"
    failed_sources: list[str] = dataclasses.field(default_factory=list)  # sources whose gated slice failed
    metrics: dict = dataclasses.field(default_factory=dict)
    pushed_to: str | None = None
    already_served: bool = False       # pushed_to held this very model already: not pushed again
    published_to: str | None = None   # the tfjs model on the CDN origin
    channel_note: str | None = None   # why latest.json did not move to the published version
    quantization_note: str | None = None  # why the weights are not browser.quantization
    ingest_report: str | None = None
    evaluation_uri: str | None = None
    confusion: list[list[int]] | None = None  # [actual][predicted] on the eval split
    sources: dict = dataclasses.field(default_factory=dict)  # per source: accuracy, cells, recall
    training: dict | None = None      # the Trainer's record: trained from the start, or adapted


def _custom(artifact, key):
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return value.WhichOneof("value") and getattr(value, value.WhichOneof("value"))


def _outputs(store, execution_id: int) -> list:
    events = store.get_events_by_execution_ids([execution_id])
    ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    return store.get_artifacts_by_id(ids) if ids else []


def _read_only(metadata_path: str) -> metadata_store.MetadataStore:
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = metadata_path
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(cfg)


def channel_note(published) -> str | None:
    channel, version = _custom(published, "channel_version"), _custom(published, "published_version")
    if not channel or channel == version:
        return None
    if _custom(published, "channel_pinned"):
        return (f"the browser channel stays at version {channel}, pinned by a rollback; lift it with "
                f"`python -m components.tfjs_publisher.publish unpin --base CDN_BASE`")
    if _custom(published, "channel_rolled_back"):
        return (f"the browser channel stays at version {channel}: a rollback rolled it back from this version; "
                f"a newer model moves it")
    return f"the browser channel stays at version {channel}, newer than this one"


def last_execution_id(metadata_path: str) -> int:
    """The id of the newest execution in the store, 0 when it has none. The next run's steps get higher
    ids: its records are told from older runs' by id, not by their times, which a clock stepped back or
    forward (NTP correcting a clock that ran fast) would mix up."""
    if not os.path.exists(metadata_path) or not os.path.getsize(metadata_path):  # empty: a first run cut short
        return 0
    return max((e.id for e in _read_only(metadata_path).get_executions()), default=0)


def collect(metadata_path: str, after_execution_id: int, class_names: list[str] = ()) -> RunSummary:
    """The run whose steps were recorded after execution `after_execution_id` (last_execution_id before it)."""
    if not os.path.exists(metadata_path):
        return RunSummary(components=[])
    store = _read_only(metadata_path)
    summary = RunSummary(components=[])
    executions = sorted((e for e in store.get_executions() if e.id > after_execution_id), key=lambda e: e.id)
    for execution in executions:
        node = next((c.name.split(".", 1)[-1] for c in store.get_contexts_by_execution(execution.id)
                     if store.get_context_types_by_id([c.type_id])[0].name == "node"), str(execution.id))
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        summary.components.append(ComponentRun(node, _STATE.Name(execution.last_known_state), seconds))
        for artifact in _outputs(store, execution.id):
            kind = store.get_artifact_types_by_id([artifact.type_id])[0].name
            if kind == "Examples" and _custom(artifact, "ingest_report"):
                summary.ingest_report = _custom(artifact, "ingest_report")
            elif kind == "Model":
                summary.training = training_record(artifact.uri)
            elif kind == "ModelBlessing":
                summary.blessed = bool(_custom(artifact, "blessed"))
            elif kind == "ModelEvaluation":
                summary.evaluation_uri = artifact.uri
            elif kind == "PushedModel" and _custom(artifact, "pushed"):
                summary.pushed_to = _custom(artifact, "pushed_destination")
                summary.already_served = bool(_custom(artifact, ALREADY_SERVED))
            elif kind == "PushedModel" and _custom(artifact, "published"):
                summary.published_to = (f"{_custom(artifact, 'published_url')} "
                                        f"({_custom(artifact, 'model_bytes')} bytes, "
                                        f"{_custom(artifact, 'quantization')} weights)")
                summary.channel_note = channel_note(artifact)
                summary.quantization_note = _custom(artifact, QUANTIZATION_NOTE)
    if summary.evaluation_uri:
        try:
            summary.metrics = {k: v for k, v in load_metrics(summary.evaluation_uri).items()
                               if k.startswith(("sparse_categorical_accuracy", "loss", "example_count"))}
            if class_names:
                summary.confusion = load_confusion_matrix(summary.evaluation_uri, len(class_names))
                if summary.confusion:
                    summary.metrics.update(per_class_metrics(summary.confusion, list(class_names)))
                summary.sources = load_source_metrics(summary.evaluation_uri, list(class_names))
        except Exception as err:  # the summary must not hide the run's own outcome
            summary.metrics = {"error": f"could not read metrics: {err}"}
    if summary.blessed is False:
        summary.blessing_reason, summary.failed_sources = _why_not_blessed(summary.evaluation_uri)
    elif summary.blessed:
        summary.blessing_reason = "blessed"
    return summary


def last_blessed_reports(metadata_path: str) -> list[dict]:
    """The ingest reports (read) of the data the last blessed model was evaluated on (the model the next
    run's Evaluator compares with, and its Trainer adapts), from the metadata store: a run killed after
    its Evaluator still counts."""
    if not os.path.exists(metadata_path) or not os.path.getsize(metadata_path):  # empty: a first run cut short
        return []
    store = _read_only(metadata_path)
    blessings = [a for a in store.get_artifacts_by_type("ModelBlessing") if _custom(a, "blessed")]
    if not blessings:
        return []
    # As TFX's LatestBlessedModelStrategy: the blessed model with the highest id, not the latest blessing.
    latest = max(blessings, key=lambda a: (_custom(a, "current_model_id") or 0, a.id))
    evaluations = [e.execution_id for e in store.get_events_by_artifact_ids([latest.id])
                   if e.type == metadata_store_pb2.Event.OUTPUT]
    examples = [e.artifact_id for e in store.get_events_by_execution_ids(evaluations)
                if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == "examples"]
    paths = {_custom(a, "ingest_report") for a in store.get_artifacts_by_id(examples)} - {None}
    return [_ingest_report(path) for path in sorted(paths)]


def labs_of(reports: list[dict]) -> list[str]:
    """The labs with training cells in these ingest reports. Training cells, as the Trainer's own check
    counts them."""
    return sorted({name for report in reports for name, lab in (report.get("labs") or {}).items() if lab.get("train")})


def eval_fraction_of(reports: list[dict]) -> float | None:
    """labs.eval_fraction the lab cells of these ingest reports were split with; None when they hold no
    lab training cell or do not record it."""
    fractions = {report.get("lab_eval_fraction") for report in reports
                 if any(lab.get("train") for lab in (report.get("labs") or {}).values())} - {None}
    return max(fractions) if fractions else None


def last_blessed_labs(metadata_path: str) -> list[str]:
    """The labs with training cells in the data of the last blessed model."""
    return labs_of(last_blessed_reports(metadata_path))


def training_record(model_uri: str) -> dict | None:
    """The training record of a Trainer's Model artifact (its SavedModel is under Format-Serving)."""
    from models.trainer.record import UnreadableRecord, read_training_record

    try:
        return read_training_record(os.path.join(model_uri, "Format-Serving"))
    except UnreadableRecord:  # the summary only shows it; the next run's Trainer refuses it
        return None


def _ingest_report(report_path: str | None) -> dict:
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(report_path) as f:
            report = json.load(f)
    except (OSError, ValueError, TypeError, tf.errors.OpError):
        return {}
    return report if isinstance(report, dict) else {}


def lab_ingest(report_path: str | None) -> dict:
    """The labs part of the ingest report, if it can be read."""
    return _ingest_report(report_path).get("labs") or {}


def stray_lab_files(report: dict) -> list[str]:
    """Files put straight into the labs folder, not into a lab's (`report`: the ingest report): the
    ingest does not read them."""
    return [r["rel_path"] for r in report.get("rejected_inputs") or [] if r.get("reason") == lab_sources.STRAY]


def _why_not_blessed(evaluation_uri: str | None) -> tuple[str, list[str]]:
    """The failed thresholds, from TFMA's validation result, and the sources whose slice failed one."""
    if not evaluation_uri:
        return "no evaluation", []
    try:
        import tensorflow_model_analysis as tfma

        validation = tfma.load_validation_result(evaluation_uri)
    except Exception as err:
        return f"thresholds not met (validation result unreadable: {err})", []
    return "; ".join(failure_reasons(validation)) or "thresholds not met", failed_sources(validation)


def failed_sources(validation) -> list[str]:
    """The sources whose own slice (keyed by the source alone) failed a threshold."""
    failed = []
    for result in validation.metric_validations_per_slice:
        keys = result.slice_key.single_slice_keys
        if result.failures and len(keys) == 1 and keys[0].column == SOURCE_KEY:
            failed.append(keys[0].bytes_value.decode())
    return failed


def failure_reasons(validation) -> list[str]:
    """Each failed threshold of TFMA's ValidationResult, and each gated slice the eval split had no
    examples of (a gate with nothing to measure fails too)."""
    missing = [", ".join(f"{k}={v}" for k, v in sorted(spec.feature_values.items())) or "overall"
               for spec in validation.missing_slices]
    return ([slice_name(s.slice_key) + describe_failure(f) for s in validation.metric_validations_per_slice
             for f in s.failures]
            + [f"{name}: no examples of it in the eval split, so nothing to gate on" for name in missing])


def slice_name(slice_key) -> str:
    """'source=tecom: ' for a slice, '' for the overall one."""
    parts = []
    for single in slice_key.single_slice_keys:
        value = single.bytes_value.decode() if single.HasField("bytes_value") else (
            single.int64_value if single.HasField("int64_value") else single.float_value)
        parts.append(f"{single.column}={value}")
    return f"{', '.join(parts)}: " if parts else ""


def describe_failure(failure) -> str:
    """One TFMA threshold failure as 'accuracy 0.2509 < 0.5' or 'accuracy change vs last blessed -0.62 < -0.01'."""
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if threshold.HasField("change_threshold"):
        bound = threshold.change_threshold.absolute.value
        return f"{name} change vs last blessed model {value:+.4f} < {bound:+.4f}"
    bounds = threshold.value_threshold
    if bounds.HasField("lower_bound") and value < bounds.lower_bound.value:
        return f"{name} {value:.4f} < {bounds.lower_bound.value:g}"
    if bounds.HasField("upper_bound") and value > bounds.upper_bound.value:
        return f"{name} {value:.4f} > {bounds.upper_bound.value:g}"
    return f"{name} {value:.4f} fails its threshold{': ' + failure.message if failure.message else ''}"


def adapted_line(training: dict) -> str:
    """The Trainer's adaptation, with the lab cells it fine-tuned on per class: the held-out share is
    drawn by cell, not by class, so a rare class can keep few of its cells for training."""
    per_class = training.get("lab_train_cells_per_class") or {}
    per_lab = training.get("lab_train_cells_per_lab") or {}
    counts = f"; per class: {', '.join(f'{name} {n}' for name, n in per_class.items())}" if per_class else ""
    if len(per_lab) > 1:
        counts += f"; per lab: {', '.join(f'{name} {n}' for name, n in per_lab.items())}"
    return (f"trainer: adapted the last blessed model to {training['lab_train_cells']} lab cells "
            f"({training['steps']} batches{counts})")


def few_cells_notes(summary: RunSummary, min_eval_cells: int) -> list[str]:
    """Each lab whose gate failed on fewer held-out cells than min_eval_cells, with what one cell weighs:
    on a handful of cells one cell decides the no-regression gate, and the remedy is more reviews."""
    if summary.blessed is not False:
        return []
    return [f"note: lab {name} was gated on {v['cells']} held-out cells (under labs.min_eval_cells, "
            f"{min_eval_cells}): one cell moves its accuracy by {1 / v['cells']:.4f}; review more of its cells"
            for name, v in summary.sources.items()
            if name in summary.failed_sources and name != BASE_SOURCE and 0 < v.get("cells", 0) < min_eval_cells]


def format_summary(summary: RunSummary, wall_seconds: float, class_names: list[str] = (),
                   min_eval_cells: int = 0) -> str:
    lines = ["", "== run summary =="]
    for c in summary.components:
        lines.append(f"  {c.node:<34} {c.state:<9} {c.seconds:8.1f} s")
    lines.append(f"  {'total wall time':<44} {wall_seconds:8.1f} s")
    if summary.ingest_report:
        lines.append(f"ingest report: {summary.ingest_report}")
    report = _ingest_report(summary.ingest_report)
    labs = report.get("labs") or {}
    for name, lab in labs.items():
        lines.append(f"lab {name}: {lab['cells']} cells ({lab['train']} train, {lab['eval']} held out), "
                     f"{lab['not_trained']} not one of the classes, {len(lab['relabelled'])} relabelled, "
                     f"{lab['refused']} refused (see the ingest report)")
    lines += [f"note: {path} not read: {lab_sources.STRAY}" for path in stray_lab_files(report)]
    lines += [f"note: {export['file']} was exported for lab '{export['lab']}': its cells are taken as {name}'s "
              f"(move it to labs/{export['lab']}/ if they are not)"
              for name, lab in labs.items() for export in lab.get("exports_of_other_labs", [])]
    lines += [f"note: lab {name}: the export of {export['exported_at']} is {export['parts']} zips, and zips "
              f"{', '.join(map(str, export['missing']))} of it were not found in the lab's folder, or were refused "
              "(see the ingest report): their cells are not read until they are there, whole"
              for name, lab in labs.items() for export in lab.get("incomplete_exports", [])]
    if summary.training and summary.training.get("mode") == "adapted":
        lines.append(adapted_line(summary.training))
    lines += [f"note: lab {name} not trained on: {why}"
              for name, why in ((summary.training or {}).get("labs_not_trained_on") or {}).items()]
    if summary.metrics:
        lines.append("eval metrics (split 'eval', base dataset): " + json.dumps(readable_metrics(summary.metrics, list(class_names))))
    if summary.confusion:
        lines.append("confusion matrix (rows: actual, columns: predicted; " + ", ".join(class_names) + "):")
        lines += ["  " + " ".join(f"{n:6d}" for n in row) for row in summary.confusion]
    if summary.sources:
        lines.append("per source (held-out cells): " + "; ".join(
            f"{name} {v['accuracy']:.4f} of {v['cells']}" for name, v in summary.sources.items()
            if v.get("accuracy") is not None))
    lines.append(f"blessed: {summary.blessed} ({summary.blessing_reason})")
    lines += few_cells_notes(summary, min_eval_cells)
    lines.append(f"pushed model: {summary.pushed_to or 'none'}")
    if summary.already_served:
        lines.append("note: TF Serving's newest version is this very model (nothing changed); not pushed again")
    lines.append(f"browser model (tfjs): {summary.published_to or 'none'}")
    if summary.quantization_note:
        lines.append(f"note: {summary.quantization_note}")
    if summary.channel_note:
        lines.append(f"note: {summary.channel_note}")
    return "\n".join(lines)
