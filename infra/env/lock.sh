#!/usr/bin/env bash
# Re-resolves locks/pipeline.lock from requirements/pipeline.in (run after editing the .in file).
# The lock targets the userland's Python 3.13 on manylinux_2_39 x86_64, where TFX 1.21's wheels load.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
exec infra/env/run.sh uv pip compile --quiet --python-version 3.13 --python-platform x86_64-manylinux_2_39 \
  --generate-hashes --no-header --output-file locks/pipeline.lock requirements/pipeline.in
