"""TFMA configuration of the Evaluator: the blessing gate and the per-class figures."""
from __future__ import annotations

from tensorflow_model_analysis.proto import config_pb2 as tfma

from models import features
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
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=features.EXAMPLES_SIGNATURE, label_key=features.LABEL_KEY,
                                    prediction_key=features.PROBABILITIES)],
        # Overall, and per true class: accuracy within a class's slice is that class's recall.
        # (TFMA's binarized top_k Recall did not count top-1 predictions exclusively here.)
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL_NAME_KEY])],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                # The gate applies to the overall slice only, not to each class's slice.
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy", config='{"name": "%s"}' % ACCURACY,
                                  per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                                      slicing_specs=[tfma.SlicingSpec()], threshold=accuracy_threshold)]),
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
        ],
    )
