"""Review exports as the web client writes them (web/src/review.ts), built in Python for tests."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from models.features import REVIEW_EXPORT_FORMAT, REVIEW_EXPORT_VERSION, REVIEW_MANIFEST


def cell(image: Path, label: str, reviewed_at: str = "2026-12-01T10:00:00Z", **extra) -> dict:
    data = image.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    return {"file": f"{label}/{sha[:12]}-{image.name}", "sha256": sha, "original_name": image.name,
            "label": label, "reviewed_at": reviewed_at, "_bytes": data, **extra}


def write_export(path: Path, cells: list[dict], lab: str = "lab", manifest_overrides: dict | None = None,
                 extra_files: dict[str, bytes] | None = None) -> Path:
    """A zip of the cells' images under <label>/ plus the manifest; `_bytes` of a cell is what the zip holds
    (tests alter it to break the sha256)."""
    manifest = {"format": REVIEW_EXPORT_FORMAT, "version": REVIEW_EXPORT_VERSION, "lab": lab,
                "exported_at": "2026-12-01T12:00:00Z",
                "cells": [{k: v for k, v in c.items() if k != "_bytes"} for c in cells],
                **(manifest_overrides or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(REVIEW_MANIFEST, json.dumps(manifest))
        for c in cells:
            if c.get("_bytes") is not None:
                archive.writestr(c["file"], c["_bytes"])
        for name, data in (extra_files or {}).items():
            archive.writestr(name, data)
    return path
