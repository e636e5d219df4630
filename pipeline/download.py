"""Downloads the Kaggle "blood-cells" dataset with the kaggle package.

    python -m pipeline.download [--dest DIR]

Credentials: KAGGLE_USERNAME and KAGGLE_KEY (infra/env/run.sh passes these two, and does not show the
sandbox the host's ~/.kaggle), or ~/.kaggle/kaggle.json when run outside it. The key is never printed. Afterwards run the pipeline with
`--data-dir DIR` (the archive's dataset2-master/images layout is found by itself).
"""
from __future__ import annotations

import argparse
import os
import shlex
import stat
import sys

DATASET = "paultimothymooney/blood-cells"


def credentials_file() -> str:
    base = os.environ.get("KAGGLE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".kaggle")
    return os.path.join(base, "kaggle.json")


def check_credentials() -> str | None:
    """Returns a warning for a credentials file others can read; raises SystemExit when none exist."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return None
    path = credentials_file()
    if not os.path.isfile(path) and os.environ.get("BLOODCELL_SANDBOX"):
        # The sandbox's home is its own and thrown away: a kaggle.json made there would not last.
        raise SystemExit("error: no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY (infra/env/run.sh "
                         "passes these two; it does not show the sandbox your ~/.kaggle)")
    if not os.path.isfile(path):
        raise SystemExit(f"error: no Kaggle credentials: create {path} (Kaggle > Settings > API) "
                         "or set KAGGLE_USERNAME and KAGGLE_KEY")
    if os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"warning: {path} is readable by other users; run: chmod 600 {path}"
    return None


def done_line(dest: str) -> str:
    """The full dataset's run, as the README gives it (its own output folder, a real blessing bar)."""
    return f"done: run `make full DATA={shlex.quote(dest)}`"


def _scrub(text: str) -> str:
    key = os.environ.get("KAGGLE_KEY")
    return text.replace(key, "***") if key else text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.download", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default="data/kaggle", help="download folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        warning = check_credentials()
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 1
    if warning:
        print(warning, file=sys.stderr)

    # kaggle's package import authenticates as a side effect; import only once credentials exist.
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    try:
        api.authenticate()
        os.makedirs(args.dest, exist_ok=True)
        print(f"downloading {DATASET} into {args.dest} (about 110 MB)", flush=True)
        api.dataset_download_files(DATASET, path=args.dest, unzip=True, quiet=False)
    except (Exception, SystemExit) as err:  # network, HTTP 401/403/404, disk
        text = _scrub(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        lowered = text.lower()
        if any(w in lowered for w in ("resolve", "connection", "timed out", "unreachable", "name or service")):
            print(f"error: cannot reach Kaggle (offline?): {text}", file=sys.stderr)
        elif any(w in lowered for w in ("401", "403", "unauthorized", "forbidden")):
            print(f"error: Kaggle refused the credentials: {text}", file=sys.stderr)
        else:
            print(f"error: download failed: {text}", file=sys.stderr)
        return 1
    print(done_line(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
