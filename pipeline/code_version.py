"""A fingerprint of the project's own code, for TFX's cache key."""
from __future__ import annotations

import hashlib
from pathlib import Path

# Not imported from pipeline.config: this module must also load where pydantic and yaml are absent
# (benchmarks/quality/tutorial_recipe.py on a GPU machine without the project's environment).
REPO_ROOT = Path(__file__).resolve().parent.parent


def code_fingerprint(*packages: str) -> str:
    """Hash of the Python sources of the given folders (or single files) under the repo.

    Functions passed by import path (as KFP images need) are not part of TFX's cache key, so each
    component's custom_config carries this: editing the code re-runs the step instead of reusing it.
    """
    digest = hashlib.sha256()
    for package in packages:
        root = REPO_ROOT / package
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
