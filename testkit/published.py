"""Metadata the web client accepts, and a converter-shaped model, for tests that publish one."""
from __future__ import annotations

import json


def client_metadata(model_name: str = "bloodcell", class_names=("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"),
                    **overrides) -> dict:
    return {"model_name": model_name, "class_names": list(class_names), "image_size": 80,
            "review_threshold": 0.8, "quantization": "float16", "input": {"name": "pixels"},
            "eval": {"split": "eval", "metrics": {}, "confusion_matrix": None}, **overrides}


def fake_tfjs_model(folder, seed: int) -> str:
    """A converter-shaped output in `folder` (a new pathlib.Path): model.json naming two groups of shards."""
    folder.mkdir(parents=True)
    manifest = []
    for g in range(2):
        name = f"group{g + 1}-shard1of1.bin"
        (folder / name).write_bytes(bytes([seed, g]) * 500)
        manifest.append({"paths": [name], "weights": [{"name": f"w{g}", "shape": [1000], "dtype": "uint8"}]})
    (folder / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {},
                                                   "weightsManifest": manifest}))
    return str(folder)
