"""TFMA configuration of the Evaluator: the blessing gate and the per-class figures."""
from __future__ import annotations

from tensorflow_model_analysis.proto import config_pb2 as tfma

from components.trainer.run_fn import EXAMPLES_SIGNATURE
from pipeline.config import Config

ACCURACY = "sparse_categorical_accuracy"


def eval_config(config: Config) -> tfma.EvalConfig:
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.evaluation.min_accuracy}),
        # Against the last blessed model (the Resolver's baseline): no more than max_accuracy_drop worse.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.evaluation.max_accuracy_drop}),
    )
    class_ids = list(range(len(config.class_names)))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EXAMPLES_SIGNATURE, label_key="label",
                                    prediction_key="probabilities")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy", config='{"name": "%s"}' % ACCURACY,
                                  threshold=accuracy_threshold),
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
            # One-vs-rest per class, counting the top-scoring class as the prediction.
            tfma.MetricsSpec(
                metrics=[tfma.MetricConfig(class_name="Recall", config='{"top_k": 1}'),
                         tfma.MetricConfig(class_name="Precision", config='{"top_k": 1}')],
                binarize=tfma.BinarizationOptions(class_ids={"values": class_ids})),
        ],
    )
