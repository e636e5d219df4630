"""What infra/env/run.sh lets into its sandbox: the names of its ALLOWED_ENV list (globs)."""
from __future__ import annotations

import re
from pathlib import Path

RUN_SH = Path(__file__).resolve().parent.parent / "infra" / "env" / "run.sh"


def allowed_env() -> list[str]:
    return re.search(r"ALLOWED_ENV=\(([^)]*)\)", RUN_SH.read_text()).group(1).split()
