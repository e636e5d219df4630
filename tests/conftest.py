"""Fixtures shared by the unit and end-to-end tests (helpers live in testkit/)."""
from __future__ import annotations

import io

import pytest

from testkit.images import SAMPLE, sample_jpegs


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

    from pipeline import local_runner

    out = tmp_path_factory.mktemp("pipeline")
    args = ["--data-dir", str(SAMPLE), "--output-dir", str(out), "--epochs", "1"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = local_runner.main(args)
    output = buffer.getvalue()
    print(output)
    pushed = re.search(r"^pushed model: (\S+)$", output, re.M)
    return types.SimpleNamespace(code=code, output=output, args=args, out=out,
                                 pushed=pushed.group(1) if pushed else None,
                                 serving_base=str(out / "bloodcell" / "serving" / "bloodcell"))
