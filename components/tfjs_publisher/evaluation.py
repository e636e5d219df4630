"""Reading a TFMA evaluation back: the headline metrics, the confusion matrix, per-class recall and
precision, and per-source figures.

The headline figures are the base dataset's slice: with labs, the overall slice mixes in every lab's
held-out cells, and a page saying "accuracy on the test set" must not. An evaluation without source
slices gives its overall slice.

Used by the run summary and by the tfjs publisher (which ships the metrics with the browser model)."""
from __future__ import annotations

from models.features import BASE_SOURCE, SOURCE_KEY


def _slice_columns(slice_key) -> dict:
    """TFMA's slice key (((column, value), ...) or a proto's single_slice_keys) -> {column: text}."""
    out = {}
    for key in slice_key:
        if isinstance(key, tuple):
            column, value = key
        else:
            column = key.column
            value = getattr(key, key.WhichOneof("kind")) if key.WhichOneof("kind") else ""
        out[column] = _text(value)
    return out


def _headline(items: list, slice_key_of) -> object | None:
    """Of (slice key, value) items: the base source's slice's value, else the overall slice's."""
    overall = base = None
    for item in items:
        columns = _slice_columns(slice_key_of(item))
        if not columns:
            overall = item
        elif columns == {SOURCE_KEY: BASE_SOURCE}:
            base = item
    return base if base is not None else overall


def headline_metrics(slicing_metrics: list) -> dict:
    """Metrics of the headline slice of TFMA's slicing_metrics: {name: value}, per-class ones as
    name/class_id."""
    chosen = _headline(slicing_metrics, lambda item: item[0])
    metrics = {}
    for _, by_sub in (chosen[1].items() if chosen else []):
        for sub_key, values in by_sub.items():
            for name, value in values.items():
                number = value.get("doubleValue") if isinstance(value, dict) else None
                if number is None:
                    continue
                label = f"{name}/{sub_key}" if sub_key else name
                metrics[label] = number
    return metrics


def load_metrics(evaluation_uri: str) -> dict:
    """The headline slice's metrics of a TFMA evaluation."""
    import tensorflow_model_analysis as tfma

    return headline_metrics(tfma.load_eval_result(evaluation_uri).slicing_metrics)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_source_metrics(evaluation_uri: str, class_names: list[str]) -> dict:
    """Per source (the base TEST, each lab's held-out cells): accuracy, cells, and recall per class
    (the accuracy of the source's class slice), from the slices keyed by source."""
    import tensorflow_model_analysis as tfma

    from models.features import LABEL_NAME_KEY

    def values(by_output) -> dict:
        out = {}
        for by_sub in by_output.values():
            for sub_key, named in by_sub.items():
                if not sub_key:
                    out.update({n: v.get("doubleValue") for n, v in named.items() if isinstance(v, dict)})
        return out

    sources: dict = {}
    for slice_key, by_output in tfma.load_eval_result(evaluation_uri).slicing_metrics:
        keys = _slice_columns(slice_key)
        if SOURCE_KEY not in keys or set(keys) - {SOURCE_KEY, LABEL_NAME_KEY}:
            continue
        figures = values(by_output)
        entry = sources.setdefault(keys[SOURCE_KEY], {"recall": {}})
        accuracy = figures.get("sparse_categorical_accuracy")
        if LABEL_NAME_KEY in keys:
            if keys[LABEL_NAME_KEY] in class_names and accuracy is not None:
                entry["recall"][keys[LABEL_NAME_KEY]] = round(accuracy, 4)
        else:
            entry["accuracy"] = round(accuracy, 4) if accuracy is not None else None
            entry["cells"] = int(figures.get("example_count") or 0)
    return {name: entry for name, entry in sorted(sources.items()) if "accuracy" in entry}


def headline_confusion_matrix(plots: list, num_classes: int) -> list[list[int]] | None:
    """The headline slice's MultiClassConfusionMatrixPlot (of TFMA's PlotsForSlice protos) as
    counts[actual][predicted]; the baseline model's plot is skipped."""
    matrices = []
    for plot in plots:
        for item in plot.plot_keys_and_values:
            if item.key.name == "multi_class_confusion_matrix_plot" and item.key.model_name != "baseline":
                matrices.append((plot.slice_key.single_slice_keys, item))
    chosen = _headline(matrices, lambda entry: entry[0])
    if chosen is None:
        return None
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for e in chosen[1].value.multi_class_confusion_matrix_at_thresholds.matrices[0].entries:
        if e.actual_class_id < num_classes and e.predicted_class_id < num_classes:
            matrix[e.actual_class_id][e.predicted_class_id] += int(e.num_weighted_examples)
    return matrix


def load_confusion_matrix(evaluation_uri: str, num_classes: int) -> list[list[int]] | None:
    """The headline slice's confusion matrix of a TFMA evaluation."""
    import tensorflow_model_analysis as tfma

    return headline_confusion_matrix(list(tfma.load_plots(evaluation_uri)), num_classes)


def per_class_metrics(matrix: list[list[int]], class_names: list[str]) -> dict:
    """Recall and precision of each class from a confusion matrix (top-1 predictions)."""
    out = {}
    for i, name in enumerate(class_names):
        actual, predicted = sum(matrix[i]), sum(row[i] for row in matrix)
        out[f"recall/{name}"] = matrix[i][i] / actual if actual else float("nan")
        out[f"precision/{name}"] = matrix[i][i] / predicted if predicted else float("nan")
    return out


def readable_metrics(metrics: dict, class_names: list[str]) -> dict:
    """'recall/classId:2 topK:1' -> 'recall/MONOCYTE'; values rounded."""
    out = {}
    for key, value in sorted(metrics.items()):
        name = key
        for i, cls in enumerate(class_names):
            name = name.replace(f"classId:{i} topK:1", cls).replace(f"classId:{i}", cls)
        out[name] = round(value, 4) if isinstance(value, float) else value
    return out


def evaluation_summary(evaluation_uri: str, class_names: list[str]) -> dict:
    """Headline metrics plus per-class recall and precision, with readable class names, and per source."""
    metrics = load_metrics(evaluation_uri)
    matrix = load_confusion_matrix(evaluation_uri, len(class_names))
    metrics = readable_metrics(metrics, class_names)
    if matrix:
        metrics.update(per_class_metrics(matrix, class_names))
    return {"metrics": metrics, "confusion_matrix": matrix,
            "sources": load_source_metrics(evaluation_uri, class_names)}
