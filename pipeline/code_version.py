"""A fingerprint of the project's own code, for TFX's cache key."""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

# Imports nothing of the project: benchmarks/quality/tutorial_recipe.py uses this on a GPU machine
# without the project's environment (no pydantic or yaml for pipeline.config).
REPO_ROOT = Path(__file__).resolve().parent.parent


def code_fingerprint(*modules: ModuleType) -> str:
    """Hash of the Python sources of the given packages (every .py under each, so a new file counts)
    or single modules.

    Functions passed by import path (as KFP images need) are not part of TFX's cache key, so each
    component's custom_config carries this: editing the code re-runs the step instead of reusing it.
    """
    digest = hashlib.sha256()
    for module in modules:
        path = Path(module.__file__).resolve()
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for file in files:
            digest.update(str(file.relative_to(REPO_ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
