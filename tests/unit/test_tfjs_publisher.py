"""TfjsPublisher's executor on its own: nothing is published for a model the Pusher did not push, and
the metadata it writes is browser-safe JSON."""
from __future__ import annotations

import json

from tfx.types import standard_artifacts

from components.tfjs_publisher import executor


def _artifact(kind, uri):
    a = kind()
    a.uri = str(uri)
    return a


def test_a_model_that_was_not_pushed_is_not_published(tmp_path):
    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    pushed.set_int_custom_property("pushed", 0)
    out = _artifact(standard_artifacts.PushedModel, tmp_path / "published")
    cdn = tmp_path / "cdn"
    executor.Executor().Do(
        {executor.PUSHED_MODEL: [pushed], executor.EVALUATION: [_artifact(standard_artifacts.ModelEvaluation, tmp_path)]},
        {executor.PUBLISHED_MODEL: [out]},
        {"cdn_base": str(cdn), "model_name": "bloodcell", "quantization": "float16", "review_threshold": 0.8,
         "class_names": json.dumps(["A", "B"]), "image_size": 80, "pipeline_name": "p", "code_version": "x"})
    assert out.get_int_custom_property("published") == 0
    assert not cdn.exists()


def test_metadata_has_no_nan_and_names_the_run():
    meta = executor.build_metadata(
        model_name="bloodcell", version="7", class_names=["A", "B"], image_size=80, review_threshold=0.8,
        quantization="float16", evaluation={"metrics": {"precision/A": float("nan"), "recall/A": 0.5},
                                            "confusion_matrix": [[1, 0], [1, 0]]},
        pipeline_name="bloodcell", run_id="run-1", saved_model="/m/7")
    text = json.dumps(meta, allow_nan=False)  # raises on NaN
    back = json.loads(text)
    assert back["eval"]["metrics"] == {"precision/A": None, "recall/A": 0.5}
    assert back["pipeline"]["run_id"] == "run-1" and back["class_names"] == ["A", "B"]
    assert back["input"]["dtype"] == "float32" and back["image_size"] == 80
