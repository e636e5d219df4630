"""Metadata the web client accepts, for tests that publish a model."""
from __future__ import annotations


def client_metadata(model_name: str = "bloodcell", class_names=("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"),
                    **overrides) -> dict:
    return {"model_name": model_name, "class_names": list(class_names), "image_size": 80,
            "review_threshold": 0.8, "quantization": "float16", "input": {"name": "pixels"},
            "eval": {"split": "eval", "metrics": {}, "confusion_matrix": None}, **overrides}
