"""Small image folders built on the fly from the real sample images in data/sample."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
CLASSES = ["EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]


def sample_jpegs(split: str = "TEST", cls: str = "EOSINOPHIL") -> list[Path]:
    return sorted((SAMPLE / split / cls).iterdir())


def make_dataset(root: Path, per_class: dict[str, int] | None = None) -> Path:
    """Copies real sample images into root/{TRAIN,TEST}/<CLASS>/."""
    per_class = per_class or {"TRAIN": 8, "TEST": 2}
    for split, n in per_class.items():
        for cls in CLASSES:
            dest = root / split / cls
            dest.mkdir(parents=True, exist_ok=True)
            for src in sample_jpegs(split, cls)[:n]:
                shutil.copy(src, dest / src.name)
    return root


def encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
