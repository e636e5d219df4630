"""Small image folders built on the fly from the real sample images in data/sample."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
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


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def with_clear_parts(path: Path, frame: int = 40) -> Image.Image:
    """The image with clear parts over a colour like nucleus stain: a clear frame (alpha 0) and a
    faint corner (alpha 64); a clear stripe down the middle, through the cell; a half-clear stripe
    across. What shows through must be white, as the pipeline's ingest makes it: kept, the stain
    colour would pull the nucleus crop to it."""
    cell = Image.open(path).convert("RGBA")
    pixels = np.asarray(cell).copy()
    alpha = np.full(cell.size[::-1], 255, np.uint8)
    alpha[:frame], alpha[-frame:], alpha[:, :frame], alpha[:, -frame:] = 0, 0, 0, 0
    alpha[:2 * frame, :2 * frame] = 64
    pixels[alpha < 255, :3] = (60, 20, 140)
    middle = cell.width // 2
    alpha[:, middle - 12:middle + 12] = 0
    alpha[100:110] = 128
    pixels[..., 3] = alpha
    return Image.fromarray(pixels, "RGBA")
