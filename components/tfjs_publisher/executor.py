"""TfjsPublisher's executor: converts the model the Pusher just pushed and publishes it to the CDN origin.

Runs only for a pushed (hence blessed) model, and uses the Pusher's version, so the browser and TF
Serving name the same model the same way. The published files are also kept in the output artifact.
"""
from __future__ import annotations

import json
import os
import tempfile

import tensorflow as tf
from absl import logging
# tfx.v1 has no BaseExecutor; TFX's custom-component guide subclasses this one.
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.tfjs_publisher.evaluation import evaluation_summary
from components.tfjs_publisher import convert, publish
from components.tfjs_publisher.metadata import build_metadata

PUSHED_MODEL = "pushed_model"
EVALUATION = "evaluation"
PUBLISHED_MODEL = "published_model"
QUANTIZATION_NOTE = "quantization_note"


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        pushed = artifact_utils.get_single_instance(input_dict[PUSHED_MODEL])
        published = artifact_utils.get_single_instance(output_dict[PUBLISHED_MODEL])
        if pushed.get_int_custom_property("pushed") != 1:
            logging.info("TfjsPublisher: the model was not pushed (not blessed); nothing to publish")
            published.set_int_custom_property("published", 0)
            return

        props = exec_properties
        class_names = json.loads(props["class_names"])
        base, model_name = props["cdn_base"], props["model_name"]
        version = pushed.get_string_custom_property("pushed_version")
        saved_model = pushed.get_string_custom_property("pushed_destination")
        evaluation_uri = artifact_utils.get_single_uri(input_dict[EVALUATION])

        with tempfile.TemporaryDirectory(prefix="tfjs-") as tmp:
            # The converter reads local files only: a remote SavedModel is copied down first.
            local_model = saved_model
            if "://" in saved_model:
                local_model = os.path.join(tmp, "saved_model")
                _copy_tree(saved_model, local_model)
            converted = os.path.join(tmp, "tfjs")
            quantization = convert.convert_for_browser(local_model, converted, props["quantization"],
                                                       props.get("converter", ""))
            metadata = build_metadata(
                model_name=model_name, version=version, class_names=class_names,
                image_size=int(props["image_size"]), review_threshold=float(props["review_threshold"]),
                quantization=quantization,
                evaluation={**evaluation_summary(evaluation_uri, class_names),
                            "min_lab_cells": int(props.get("min_lab_cells") or 20)},
                pipeline_name=props.get("pipeline_name", ""),
                run_id=self._context.pipeline_run_id if self._context else None, saved_model=saved_model)
            pointer = publish.publish_or_resume(converted, base, model_name, version, metadata)
            published_quantization = publish.published_metadata(base, model_name, version)["quantization"]
            note = quantization_note(version, props["quantization"], published_quantization,
                                     fresh=published_quantization == quantization)
            if note:
                logging.warning("TfjsPublisher: %s", note)
                published.set_string_custom_property(QUANTIZATION_NOTE, note)
            _copy_tree(publish.version_dir(base, model_name, version), published.uri)

        published.set_int_custom_property("published", 1)
        published.set_string_custom_property("published_version", version)
        published.set_string_custom_property(
            "published_url", os.path.join(base, model_name, version, publish.MODEL_JSON))
        # The browser channel: where latest.json points after this publish (a rollback's pin keeps it).
        published.set_string_custom_property("channel_version", pointer["version"])
        published.set_int_custom_property("channel_pinned", int(bool(pointer.get("pinned"))))
        published.set_int_custom_property("channel_rolled_back", int(publish.rolled_back(version, pointer)))
        published.set_string_custom_property("quantization", published_quantization)
        published.set_int_custom_property("model_bytes", convert.model_bytes(published.uri))
        logging.info("TfjsPublisher: published %s version %s to %s", model_name, version, base)


def quantization_note(version: str, requested: str, published: str, *, fresh: bool) -> str | None:
    """Why the version's weights are not browser.quantization, or None when they are."""
    if published == requested:
        return None
    if fresh:
        return f"version {version}'s weights would overflow {requested}; published unquantized"
    return (f"version {version} was already published with {published} weights and stays so (a published "
            f"version never changes); browser.quantization={requested} applies from the next new model")


def _copy_tree(src: str, dst: str) -> None:
    tf.io.gfile.makedirs(dst)
    for name in tf.io.gfile.listdir(src):
        source = os.path.join(src, name.rstrip("/"))
        if tf.io.gfile.isdir(source):
            _copy_tree(source, os.path.join(dst, name.rstrip("/")))
        else:
            tf.io.gfile.copy(source, os.path.join(dst, name), overwrite=True)
