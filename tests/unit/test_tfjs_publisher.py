"""TfjsPublisher's executor on its own: nothing is published for a model the Pusher did not push, and
the metadata it writes is browser-safe JSON."""
from __future__ import annotations

import json

import pytest

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


def test_float16_overflow_names_the_weights_that_hold_an_infinity(tmp_path):
    import numpy as np

    from components.tfjs_publisher import convert

    names = b"".join(len(n).to_bytes(4, "little") + n for n in (b"EOSINOPHIL", b"MONOCYTE"))
    with np.errstate(over="ignore"):  # the overflow is the point
        fine, over = np.array([1.5, -2.0], "<f2"), np.array([65504.0, 70000.0], "<f4").astype("<f2")
    shard = np.array([7], "<i4").tobytes() + names + fine.tobytes() + over.tobytes()
    (tmp_path / "group1-shard1of1.bin").write_bytes(shard)
    half = {"dtype": "float16", "original_dtype": "float32"}
    (tmp_path / "model.json").write_text(json.dumps({"weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": [
        {"name": "n", "shape": [], "dtype": "int32"}, {"name": "names", "shape": [2], "dtype": "string"},
        {"name": "fine", "shape": [2], "dtype": "float32", "quantization": half},
        {"name": "precision", "shape": [2], "dtype": "float32", "quantization": half}]}]}))
    assert convert.float16_overflow(str(tmp_path)) == ["precision"]
    (tmp_path / "group1-shard1of1.bin").write_bytes(shard[:-2])
    with pytest.raises(convert.ConversionError, match="does not match its shards"):
        convert.float16_overflow(str(tmp_path))


@pytest.mark.parametrize("requested, published, fresh, note", [
    ("float16", "float16", True, None),
    ("float16", "none", True, "version 3's weights would overflow float16; published unquantized"),
    ("float16", "uint8", False, "version 3 was already published with uint8 weights and stays so (a published "
                                "version never changes); browser.quantization=float16 applies from the next "
                                "new model"),
    ("uint8", "uint8", False, None),
])
def test_a_quantization_other_than_the_one_asked_for_is_explained(requested, published, fresh, note):
    assert executor.quantization_note("3", requested, published, fresh=fresh) == note
