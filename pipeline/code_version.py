"""A fingerprint of the project's own code, for TFX's cache key."""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

# Imports nothing of the project: benchmarks/quality/tutorial_recipe.py uses this on a GPU machine
# without the project's environment (no pydantic or yaml for pipeline.config).
REPO_ROOT = Path(__file__).resolve().parent.parent


def code_fingerprint(*sources: ModuleType | Path, data_files: bool = False) -> str:
    """Hash of the Python sources of the given packages (every .py under each, so a new file counts)
    or single modules; with data_files, of every file in the packages but bytecode (a curated schema,
    warm-up images). A Path source is a file, or a folder whose every file counts.

    Functions passed by import path (as KFP images need) are not part of TFX's cache key, so each
    component's custom_config carries this: editing the code re-runs the step instead of reusing it.
    """
    digest = hashlib.sha256()
    for source in sources:
        if isinstance(source, Path):
            files = sorted(f for f in source.rglob("*") if f.is_file()) if source.is_dir() else [source]
        else:
            path = Path(source.__file__).resolve()
            if path.name != "__init__.py":
                files = [path]
            elif data_files:
                files = sorted(f for f in path.parent.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
            else:
                files = sorted(path.parent.rglob("*.py"))
        for file in files:
            file = file.resolve()
            name = file.relative_to(REPO_ROOT) if file.is_relative_to(REPO_ROOT) else file
            digest.update(str(name).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
