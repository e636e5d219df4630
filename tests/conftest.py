"""Fixtures shared by the unit and end-to-end tests (helpers live in testkit/)."""
from __future__ import annotations

import io

import pytest

from testkit.images import SAMPLE, sample_jpegs


@pytest.fixture(scope="session", autouse=True)
def no_lab_of_this_checkout(tmp_path_factory):
    """A lab's exports in this checkout's labs/ (patient images, on the lab's own machine) must not reach
    the tests' pipeline runs: every run in the test process reads config.yaml with labs.dir an empty
    folder. A test that wants labs sets labs.dir itself."""
    from pipeline import config

    folder = tmp_path_factory.mktemp("config")
    text = config.DEFAULT_CONFIG.read_text()
    line = "\n  dir: labs "
    assert text.count(line) == 1, "config.yaml's labs.dir line moved: update this fixture"
    copy = folder / "config.yaml"
    copy.write_text(text.replace(line, f"\n  dir: {folder / 'labs'} "))
    patch = pytest.MonkeyPatch()
    patch.setattr(config, "DEFAULT_CONFIG", copy)
    yield
    patch.undo()


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
