"""A fingerprint of the project's own code, for TFX's cache key."""
from __future__ import annotations

import hashlib

from pipeline.config import REPO_ROOT


def code_fingerprint(*packages: str) -> str:
    """Hash of the Python sources of the given folders under the repo.

    Functions passed by import path (as KFP images need) are not part of TFX's cache key, so each
    component's custom_config carries this: editing the code re-runs the step instead of reusing it.
    """
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
