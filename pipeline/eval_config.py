"""TFMA configuration of the Evaluator: the blessing gate and the per-class figures."""
from __future__ import annotations

from tensorflow_model_analysis.proto import config_pb2 as tfma

from models import features
from pipeline.config import Config

ACCURACY = "sparse_categorical_accuracy"


def eval_config(config: Config) -> tfma.EvalConfig:
    no_regression = tfma.GenericChangeThreshold(  # against the last blessed model (the Resolver's baseline)
        direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -config.evaluation.max_accuracy_drop})
    base_only = tfma.SlicingSpec(feature_values={features.SOURCE_KEY: features.BASE_SOURCE})
    every_source = tfma.SlicingSpec(feature_keys=[features.SOURCE_KEY])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=features.EXAMPLES_SIGNATURE, label_key=features.LABEL_KEY,
                                    prediction_key=features.PROBABILITIES)],
        # Overall; per true class (accuracy within a class's slice is that class's recall); per source
        # (the base TEST and each lab's held-out cells); per class within each source.
        # (TFMA's binarized top_k Recall did not count top-1 predictions exclusively here.)
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.LABEL_NAME_KEY]), every_source,
                       tfma.SlicingSpec(feature_keys=[features.SOURCE_KEY, features.LABEL_NAME_KEY])],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                # The gate: the base TEST reaches min_accuracy, and no source (the base, each lab) falls
                # behind the last blessed model by more than max_accuracy_drop. A lab's absolute figure
                # is not gated: a new lab starts far below the base.
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy", config='{"name": "%s"}' % ACCURACY,
                                  per_slice_thresholds=[
                                      tfma.PerSliceMetricThreshold(slicing_specs=[base_only], threshold=tfma.MetricThreshold(
                                          value_threshold=tfma.GenericValueThreshold(
                                              lower_bound={"value": config.evaluation.min_accuracy}))),
                                      tfma.PerSliceMetricThreshold(slicing_specs=[every_source], threshold=tfma.MetricThreshold(
                                          change_threshold=no_regression)),
                                  ]),
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
        ],
    )
