"""The Pusher's reading of TF Serving's model folder: which version holds a whole push, and which
folders are pushes cut short."""
from __future__ import annotations

import os
import time

from components.pusher.executor import INTERRUPTED_AFTER_S, newest_version, remove_interrupted_pushes


def version(base, name, whole=True, age_s=0.0):
    folder = base / name
    (folder / "variables").mkdir(parents=True)
    files = [folder / "variables" / "variables.index"] + ([folder / "saved_model.pb"] if whole else [])
    for path in files:
        path.write_bytes(b"x")
    stamp = time.time() - age_s
    for path in [*files, folder / "variables", folder]:
        os.utime(path, (stamp, stamp))


def test_a_push_cut_short_is_not_the_newest_version_and_is_removed_once_stale(tmp_path):
    """TFX copies saved_model.pb last. A folder without it had counted as the version served; left in
    place, TF Serving counts it among its two newest and fails it, so the next push unloads the good one."""
    version(tmp_path, "100")
    version(tmp_path, "200", whole=False, age_s=INTERRUPTED_AFTER_S + 60)
    version(tmp_path, "300", whole=False)  # still being copied, perhaps
    (tmp_path / "notes").mkdir()
    assert newest_version(str(tmp_path)) == "100"
    assert remove_interrupted_pushes(str(tmp_path)) == ["200"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["100", "300", "notes"]
    assert remove_interrupted_pushes(str(tmp_path), now=time.time() + INTERRUPTED_AFTER_S + 60) == ["300"]
    assert newest_version(str(tmp_path)) == "100"


def test_no_serving_folder_yet(tmp_path):
    assert newest_version(str(tmp_path / "none")) is None
    assert remove_interrupted_pushes(str(tmp_path / "none")) == []
