"""The headline figures read back from a TFMA evaluation are the base dataset's, not a mix with the
labs' held-out cells (the browser shows them as "accuracy on the test set")."""
from __future__ import annotations

from tensorflow_model_analysis.proto import metrics_for_slice_pb2 as mfs

from components.tfjs_publisher.evaluation import headline_confusion_matrix, headline_metrics

OVERALL, BASE, LAB = (), (("source", b"base"),), (("source", b"mylab"),)
BASE_EOS = (("source", b"base"), ("label_name", b"EOSINOPHIL"))


def accuracy(value: float, count: float) -> dict:
    return {"": {"": {"sparse_categorical_accuracy": {"doubleValue": value},
                      "example_count": {"doubleValue": count}}}}


def test_the_headline_metrics_are_the_base_slice_when_there_is_one():
    slicing = [(OVERALL, accuracy(0.5385, 65)), (BASE_EOS, accuracy(1.0, 12)), (BASE, accuracy(0.5208, 48)),
               (LAB, accuracy(0.588, 17))]
    assert headline_metrics(slicing) == {"sparse_categorical_accuracy": 0.5208, "example_count": 48}
    # An evaluation sliced by nothing else gives its overall slice.
    assert headline_metrics([(OVERALL, accuracy(0.9, 10))])["sparse_categorical_accuracy"] == 0.9


def plot(slice_key: tuple, counts: dict, model_name: str = "") -> mfs.PlotsForSlice:
    out = mfs.PlotsForSlice()
    for column, value in slice_key:
        out.slice_key.single_slice_keys.add(column=column, bytes_value=value)
    item = out.plot_keys_and_values.add()
    item.key.name, item.key.model_name = "multi_class_confusion_matrix_plot", model_name
    matrix = item.value.multi_class_confusion_matrix_at_thresholds.matrices.add()
    for (actual, predicted), n in counts.items():
        matrix.entries.add(actual_class_id=actual, predicted_class_id=predicted, num_weighted_examples=n)
    return out


def test_the_headline_confusion_matrix_is_the_base_slice_of_the_candidate():
    plots = [plot(OVERALL, {(0, 0): 5, (1, 0): 3}), plot(LAB, {(1, 0): 3}),
             plot(BASE, {(0, 0): 9}, model_name="baseline"), plot(BASE, {(0, 0): 5})]
    assert headline_confusion_matrix(plots, 2) == [[5, 0], [0, 0]]
    assert headline_confusion_matrix(plots[:1], 2) == [[5, 0], [3, 0]]
    assert headline_confusion_matrix([], 2) is None
