"""The stable hash that assigns files and cell groups to splits, the same on every machine and run."""
from __future__ import annotations

import hashlib


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) for a key: the same file always lands in the same split."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
