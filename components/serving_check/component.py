"""ServingCheck: the local stand-in for TFX's InfraValidator, where no tensorflow_model_server exists.

It meets the Trainer's model as TF Serving would (it loads; the serving signature's names and dtypes
are what clients send and read; the warm-up file parses, and every warm-up request is answered) and
gives the Pusher an InfraBlessing. A model that fails stops the run with one line, so nothing is
pushed. Kubeflow runs it too: KubeflowV2DagRunner cannot compile TFX's InfraValidator.
"""
# No `from __future__ import annotations`: TFX reads this component's annotations as types.

import os

import tensorflow as tf
from tfx import v1 as tfx
# tfx.v1 has no path helper for the Trainer's serving model folder; TFX's own components use this one.
from tfx.utils import path_utils

from serving.version_check import check_version

BLESSED_FILE = "INFRA_BLESSED"  # as InfraValidator marks a blessing


class ServingCheckError(RuntimeError):
    """The model would not serve; the message is one line."""


def check_serving(model_dir: str) -> None:
    problems = check_version(model_dir, numbered=False, answer_warmup=True)
    if problems:
        raise ServingCheckError(f"the model would not serve, not pushed: {'; '.join(problems)}")


def mark_blessed(blessing_uri: str) -> None:
    """The blessing's marker file, in a local folder or a bucket (Kubeflow's pipeline root)."""
    tf.io.gfile.makedirs(blessing_uri)
    with tf.io.gfile.GFile(os.path.join(blessing_uri, BLESSED_FILE), "w") as f:
        f.write("")  # an object store makes no object for a file never written


@tfx.dsl.components.component
def ServingCheck(model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
                 blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.InfraBlessing],
                 code_version: tfx.dsl.components.Parameter[str] = "") -> None:
    # code_version: enters the cache key only (pipeline/code_version.py).
    check_serving(path_utils.serving_model_path(model.uri))
    mark_blessed(blessing.uri)
    blessing.set_int_custom_property("blessed", 1)
