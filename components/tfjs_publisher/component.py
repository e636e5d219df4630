"""TfjsPublisher: after the Pusher, the same model as a TensorFlow.js graph model on the CDN origin.

Inputs: the Pusher's `pushed_model` (only a pushed, hence blessed, model is published) and the
Evaluator's `evaluation` (its metrics travel in metadata.json). Output: `published_model`, a PushedModel
artifact holding the published files, with custom properties published (0/1), published_version,
published_url, quantization and model_bytes.
"""
from __future__ import annotations

import json

from tfx import types
# tfx.v1 exposes no ComponentSpec/BaseComponent; these are what TFX's custom-component guide uses.
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.tfjs_publisher import executor


class TfjsPublisherSpec(types.ComponentSpec):
    PARAMETERS = {
        "cdn_base": ExecutionParameter(type=str),
        "model_name": ExecutionParameter(type=str),
        "quantization": ExecutionParameter(type=str),
        "review_threshold": ExecutionParameter(type=float),
        "class_names": ExecutionParameter(type=str),   # JSON list
        "image_size": ExecutionParameter(type=int),
        "pipeline_name": ExecutionParameter(type=str),
        "converter": ExecutionParameter(type=str, optional=True),
        "min_lab_cells": ExecutionParameter(type=int, optional=True),  # fewer: a lab's figure means little
        "code_version": ExecutionParameter(type=str),  # re-runs the step when its code changes
    }
    INPUTS = {
        executor.PUSHED_MODEL: ChannelParameter(type=standard_artifacts.PushedModel),
        executor.EVALUATION: ChannelParameter(type=standard_artifacts.ModelEvaluation),
    }
    OUTPUTS = {
        executor.PUBLISHED_MODEL: ChannelParameter(type=standard_artifacts.PushedModel),
    }


class TfjsPublisher(base_component.BaseComponent):
    SPEC_CLASS = TfjsPublisherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, pushed_model, evaluation, *, cdn_base: str, model_name: str, quantization: str,
                 review_threshold: float, class_names: list[str], image_size: int, pipeline_name: str,
                 code_version: str, converter: str = "", min_lab_cells: int = 20):
        super().__init__(spec=TfjsPublisherSpec(
            pushed_model=pushed_model, evaluation=evaluation,
            published_model=types.Channel(type=standard_artifacts.PushedModel),
            cdn_base=cdn_base, model_name=model_name, quantization=quantization,
            review_threshold=review_threshold, class_names=json.dumps(list(class_names)),
            image_size=image_size, pipeline_name=pipeline_name, converter=converter,
            code_version=code_version, min_lab_cells=min_lab_cells))
