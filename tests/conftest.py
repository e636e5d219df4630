"""Shared test helpers: small image folders built on the fly from real sample images."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
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


@pytest.fixture
def real_jpeg() -> bytes:
    return sample_jpegs()[0].read_bytes()


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """The real pipeline run once on the bundled sample (1 epoch); shared by the tests that need a
    pushed model."""
    import contextlib
    import re
    import types

    from pipeline import run_local

    out = tmp_path_factory.mktemp("pipeline")
    args = ["--data-dir", str(SAMPLE), "--output-dir", str(out), "--epochs", "1"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = run_local.main(args)
    output = buffer.getvalue()
    print(output)
    pushed = re.search(r"^pushed model: (\S+)$", output, re.M)
    return types.SimpleNamespace(code=code, output=output, args=args, out=out,
                                 pushed=pushed.group(1) if pushed else None,
                                 serving_base=str(out / "bloodcell" / "serving" / "bloodcell"))
