"""Publishing tfjs models to the CDN origin: hashed immutable versions, an atomic channel pointer,
interrupted publishes, rollback."""
from __future__ import annotations

import json
import os

import pytest

from components.tfjs_publisher import publish as pub
from testkit.published import client_metadata, fake_tfjs_model

META = client_metadata()


def latest(base):
    return json.loads((base / "bloodcell" / "latest.json").read_text())["version"]


def test_publish_writes_hashed_immutable_version_and_points_latest(tmp_path):
    base = tmp_path / "origin"
    pointer = pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    assert pointer == {"version": "1", "model_url": "1/model.json", "metadata_url": "1/metadata.json", "pinned": False,
                       "withdrawn": []}
    model = json.loads((base / "bloodcell" / "1" / "model.json").read_text())
    shards = [p for g in model["weightsManifest"] for p in g["paths"]]
    assert all(len(s.split(".")[-2]) == 16 for s in shards) and len(set(shards)) == 2
    assert all((base / "bloodcell" / "1" / s).exists() for s in shards)
    assert json.loads((base / "bloodcell" / "1" / "metadata.json").read_text()) == {**META, "version": "1"}
    with pytest.raises(pub.PublishError, match="already exists .* versions are immutable"):
        pub.publish(fake_tfjs_model(tmp_path / "again", 9), str(base), "bloodcell", "1", META)


def test_interrupted_publish_leaves_latest_on_the_previous_version(tmp_path, monkeypatch):
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    real_write, writes = pub._write, []

    def failing_write(path, data):
        writes.append(path)
        if len(writes) == 2:  # the second shard: the network dropped, the disk filled, the job was killed
            raise OSError("connection reset")
        real_write(path, data)

    monkeypatch.setattr(pub, "_write", failing_write)
    with pytest.raises(OSError):
        pub.publish(fake_tfjs_model(tmp_path / "v2", 2), str(base), "bloodcell", "2", META)
    monkeypatch.setattr(pub, "_write", real_write)
    assert latest(base) == "1"
    with pytest.raises(pub.PublishError, match="version 2 of bloodcell is not published"):
        pub.point_latest(str(base), "bloodcell", "2")
    # A retry of the same version completes it.
    pub.publish(fake_tfjs_model(tmp_path / "v2b", 2), str(base), "bloodcell", "2", META)
    assert latest(base) == "2"
    assert not list((base / "bloodcell").glob("latest.json.tmp-*"))


def test_rollback_and_its_refusals(tmp_path, capsys):
    base = tmp_path / "origin"
    for v in ("1", "2"):
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), str(base), "bloodcell", v, META)
    assert pub.main(["rollback", "--base", str(base), "--version", "1"]) == 0
    assert latest(base) == "1"
    assert pub.main(["list", "--base", str(base)]) == 0
    assert "1  <- latest" in capsys.readouterr().out
    assert pub.main(["rollback", "--base", str(base), "--version", "7"]) == 1
    assert capsys.readouterr().err.strip() == f"error: version 7 of bloodcell is not published under {base} (no complete model.json)"
    shard = next((base / "bloodcell" / "2").glob("group1-*.bin"))
    shard.write_bytes(b"tampered")
    assert pub.main(["rollback", "--base", str(base), "--version", "2"]) == 1
    assert "does not match its hash" in capsys.readouterr().err
    assert latest(base) == "1"


@pytest.mark.parametrize("bad, problem", [
    ({}, "is a required property"),
    ({"class_names": ["ONLY"]}, "class_names"),
    ({"review_threshold": 1.5}, "review_threshold"),
    ({"input": {"name": "images"}}, "input.name"),
    ({"eval": {"metrics": {}, "confusion_matrix": [[1, 0], [0, 1]]}}, "confusion_matrix is not 4 x 4"),
])
def test_metadata_the_client_would_refuse_is_not_published(tmp_path, bad, problem):
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    metadata = {} if bad == {} else {**META, **bad}
    with pytest.raises(pub.PublishError, match=problem):
        pub.publish(fake_tfjs_model(tmp_path / "v2", 2), str(base), "bloodcell", "2", metadata)
    assert latest(base) == "1"
    assert not (base / "bloodcell" / "2").exists()


def test_publish_without_metadata_exits_1_and_leaves_the_channel(tmp_path, capsys):
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    code = pub.main(["publish", fake_tfjs_model(tmp_path / "v2", 2), "--base", str(base), "--version", "2"])
    assert code == 1
    assert capsys.readouterr().err.strip().startswith("error: publish needs --metadata")
    assert latest(base) == "1" and not (base / "bloodcell" / "2").exists()


@pytest.mark.parametrize("flag, value", [("--version", "../../escaped"), ("--version", ".."),
                                         ("--model-name", "../other"), ("--model-name", ".")])
def test_names_cannot_escape_the_base(tmp_path, capsys, flag, value):
    base = tmp_path / "origin"
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(META))
    args = {"--version": "2", "--model-name": "bloodcell", flag: value}
    code = pub.main(["publish", fake_tfjs_model(tmp_path / "v2", 2), "--base", str(base), "--metadata", str(meta),
                     "--version", args["--version"], "--model-name", args["--model-name"]])
    assert code == 1 and "must be letters, digits" in capsys.readouterr().err
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("model.json")] == ["v2/model.json"]


def test_a_late_publish_of_an_older_version_does_not_move_the_channel_back(tmp_path):
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v20", 20), str(base), "bloodcell", "20", META)
    pointer = pub.publish(fake_tfjs_model(tmp_path / "v10", 10), str(base), "bloodcell", "10", META)
    assert pointer["version"] == "20" and latest(base) == "20"
    assert (base / "bloodcell" / "10" / "model.json").exists()  # published, just not the channel


def test_concurrent_publishes_end_on_the_newer_version(tmp_path):
    import threading

    base = tmp_path / "origin"
    for round_ in range(8):
        older, newer = str(100 * round_ + 1), str(100 * round_ + 2)
        sources = {v: fake_tfjs_model(tmp_path / f"src{v}", int(v) % 250) for v in (older, newer)}
        threads = [threading.Thread(target=pub.publish, args=(sources[v], str(base), "bloodcell", v, META))
                   for v in (newer, older)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert latest(base) == newer


def test_a_held_channel_lock_is_a_clear_locked_error(tmp_path):
    import fcntl

    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    with open(base / "bloodcell" / pub.LOCK, "a") as other_publisher:
        fcntl.flock(other_publisher, fcntl.LOCK_EX)
        with pytest.raises(pub.PublishError, match="channel is locked by another publish or rollback"):
            with pub.channel_lock(str(base), "bloodcell", wait_s=0.2):
                pass


def test_a_rollback_sticks_until_it_is_lifted(tmp_path, capsys):
    base = tmp_path / "origin"
    for v in ("1", "2"):
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), str(base), "bloodcell", v, META)
    assert pub.main(["rollback", "--base", str(base), "--version", "1"]) == 0
    pointer = pub.publish(fake_tfjs_model(tmp_path / "src3", 3), str(base), "bloodcell", "3", META)
    assert pointer["version"] == "1" and pointer["pinned"] and latest(base) == "1"
    capsys.readouterr()
    assert pub.main(["list", "--base", str(base)]) == 0
    assert "1  <- latest (pinned by a rollback)" in capsys.readouterr().out
    assert pub.main(["unpin", "--base", str(base)]) == 0
    assert latest(base) == "1"
    pub.publish(fake_tfjs_model(tmp_path / "src4", 4), str(base), "bloodcell", "4", META)
    assert latest(base) == "4"


def test_a_version_rolled_back_from_never_returns_after_unpin(tmp_path, capsys):
    """After rollback and unpin, a retried or re-run publish of the bad version (its Pusher cached, the
    publisher's code changed) had moved the channel back to it, being newer than the rollback target."""
    base = tmp_path / "origin"
    for v in ("1", "2", "3"):
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), str(base), "bloodcell", v, META)
    assert pub.main(["rollback", "--base", str(base), "--version", "2"]) == 0
    assert pub.main(["unpin", "--base", str(base)]) == 0
    capsys.readouterr()
    for v in ("3", "2"):
        pointer = pub.publish_or_resume(str(tmp_path / f"src{v}"), str(base), "bloodcell", v, META)
        assert pointer["version"] == "2" and latest(base) == "2", v
    assert pub.main(["list", "--base", str(base)]) == 0
    assert "3  (rolled back from: the channel does not return to it)" in capsys.readouterr().out
    pub.publish(fake_tfjs_model(tmp_path / "src4", 4), str(base), "bloodcell", "4", META)
    assert latest(base) == "4"
    # A later rollback keeps what an earlier one rolled back from.
    assert pub.main(["rollback", "--base", str(base), "--version", "1"]) == 0
    assert pub.main(["unpin", "--base", str(base)]) == 0
    for v in ("3", "4"):
        assert pub.publish_or_resume(str(tmp_path / f"src{v}"), str(base), "bloodcell", v, META)["version"] == "1"


def test_a_rollback_refuses_a_version_the_web_client_would_refuse(tmp_path, capsys):
    """A folder named other than its metadata's version, or not a number: the client refuses the
    pointer, so every new browser failed to load a model."""
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "src1", 1), str(base), "bloodcell", "1", META)
    import shutil
    shutil.copytree(base / "bloodcell" / "1", base / "bloodcell" / "7")
    shutil.copytree(base / "bloodcell" / "1", base / "bloodcell" / "hotfix")
    capsys.readouterr()
    assert pub.main(["rollback", "--base", str(base), "--version", "7"]) == 1
    assert capsys.readouterr().err.strip() == ("error: version 7's metadata.json is of version 1: "
                                               "a folder copied by hand? (the web client refuses it)")
    assert pub.main(["rollback", "--base", str(base), "--version", "hotfix"]) == 1
    assert "must be a number" in capsys.readouterr().err
    assert latest(base) == "1"


def test_a_publish_cut_off_while_writing_model_json_can_be_published_again(tmp_path, capsys):
    # model.json marks a version complete: an earlier publisher killed mid-write left one cut short.
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    (base / "bloodcell" / "2").mkdir()
    (base / "bloodcell" / "2" / "model.json").write_text('{"format": "graph-mo')
    assert pub.main(["list", "--base", str(base)]) == 0
    assert capsys.readouterr().out.splitlines() == ["1  <- latest", "2  (incomplete: a publish that did not finish)"]
    with pytest.raises(pub.PublishError, match="version 2 of bloodcell is not published"):
        pub.point_latest(str(base), "bloodcell", "2")
    pointer = pub.publish_or_resume(fake_tfjs_model(tmp_path / "v2", 2), str(base), "bloodcell", "2", META)
    assert pointer["version"] == "2" and latest(base) == "2"
    assert not list((base / "bloodcell" / "2").glob("*.tmp-*"))


def test_model_json_is_written_whole(tmp_path, monkeypatch):
    base = tmp_path / "origin"
    real_write = pub._write

    def cut_short(path, data):
        if os.path.basename(path).startswith("model.json"):
            real_write(path, data[:10])
            raise OSError("killed")
        real_write(path, data)

    monkeypatch.setattr(pub, "_write", cut_short)
    with pytest.raises(OSError):
        pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    assert not (base / "bloodcell" / "1" / "model.json").exists()


@pytest.mark.parametrize("args, problem", [
    (["--version", "b"], "version 'b' must be a number"),
    (["--version", "3", "--metadata-list"], "the metadata must be a JSON object, not list"),
])
def test_a_version_name_or_metadata_the_channel_cannot_order_is_one_line(tmp_path, capsys, args, problem):
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps([1, 2]) if "--metadata-list" in args else json.dumps(META))
    args = [a for a in args if a != "--metadata-list"]
    code = pub.main(["publish", fake_tfjs_model(tmp_path / "src", 1), "--base", str(tmp_path / "origin"), *args,
                     "--metadata", str(metadata)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and problem in err and "\n" not in err, err


def test_unpin_reads_the_channel_under_its_lock(tmp_path, monkeypatch):
    # A rollback landing between unpin's read and its write must not be undone.
    base = tmp_path / "origin"
    for v in ("1", "2", "3"):
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), str(base), "bloodcell", v, META)
    pub.point_latest(str(base), "bloodcell", "2", pinned=True)
    real_read, reads = pub.read_pointer, []

    def read_then_rollback(b, m):
        pointer = real_read(b, m)
        if not reads:  # another operator's rollback, as soon as unpin has read the pointer
            reads.append(pointer)
            with pytest.raises(pub.PublishError, match="locked"):
                with pub.channel_lock(b, m, wait_s=0.1):
                    pass
        return pointer

    monkeypatch.setattr(pub, "read_pointer", read_then_rollback)
    pub.unpin(str(base), "bloodcell")
    assert reads and json.loads((base / "bloodcell" / "latest.json").read_text())["pinned"] is False


def test_list_names_a_folder_no_publish_made_instead_of_failing(tmp_path, capsys):
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    (base / "bloodcell" / "old copy").mkdir()
    assert pub.main(["list", "--base", str(base)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "1  <- latest", "old copy  (not a version: its name is not one a publish writes)"]


def test_list_of_a_folder_without_the_model_says_so(tmp_path, capsys):
    """A mistyped --base had printed nothing and exited 0, as an origin with nothing published."""
    assert pub.main(["list", "--base", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip() == f"error: no version of bloodcell is published under {tmp_path / 'nope'}"


def test_a_rerun_under_another_quantization_keeps_the_published_version(tmp_path):
    # browser.quantization changed, the model did not: the version stays as browsers cached it.
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", {**META, "quantization": "uint8"})
    before = {p.name: p.read_bytes() for p in (base / "bloodcell" / "1").iterdir()}
    pointer = pub.publish_or_resume(fake_tfjs_model(tmp_path / "again", 2), str(base), "bloodcell", "1",
                                    {**META, "quantization": "float16"})
    assert pointer["version"] == "1" and latest(base) == "1"
    assert {p.name: p.read_bytes() for p in (base / "bloodcell" / "1").iterdir()} == before
    assert pub.published_metadata(str(base), "bloodcell", "1")["quantization"] == "uint8"


def test_model_bytes_count_the_files_a_browser_downloads(tmp_path, monkeypatch):
    """Shards an earlier, cut-short publish left in the version's folder are never downloaded: they
    had been counted in the size the summary reports and the 1 MB budget is checked against."""
    from components.tfjs_publisher import convert

    base = tmp_path / "origin"
    real = pub._write_whole
    monkeypatch.setattr(pub, "_write_whole", lambda path, data: (
        (_ for _ in ()).throw(OSError("killed")) if path.endswith("model.json") else real(path, data)))
    with pytest.raises(OSError):
        pub.publish(fake_tfjs_model(tmp_path / "first", 1), str(base), "bloodcell", "1", META)
    monkeypatch.setattr(pub, "_write_whole", real)
    pub.publish(fake_tfjs_model(tmp_path / "retry", 2), str(base), "bloodcell", "1", META)
    folder = base / "bloodcell" / "1"
    model = json.loads((folder / "model.json").read_text())
    downloaded = [folder / "model.json", *(folder / p for g in model["weightsManifest"] for p in g["paths"])]
    assert len(list(folder.glob("*.bin"))) == 4  # the first try's two shards are still there
    assert convert.model_bytes(str(folder)) == sum(p.stat().st_size for p in downloaded)


def test_a_local_publish_reaches_the_disk_before_the_pointer_names_it(tmp_path, monkeypatch):
    """A rename is only metadata: after a power cut the pointer could name a version whose shards the
    disk never got (empty files), unless each file and folder was synced before the next step."""
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "src1", 1), str(base), "bloodcell", "1", META)
    folder = base / "bloodcell" / "1"
    names = [os.path.basename(p).split(".tmp-")[0] for p in synced]
    for f in folder.iterdir():
        assert names.index(f.name) < names.index("latest.json"), f.name
    assert names.index("1") < names.index("latest.json")  # the version's folder entries too
    assert names[-1] == "bloodcell"  # and the pointer's rename


def test_a_cli_publish_stopped_before_the_pointer_moved_finishes_when_run_again(tmp_path, capsys, monkeypatch):
    """Killed (or out of lock time) after model.json: every retry had said 'versions are immutable', and
    only a rollback then unpin moved the channel. The same model is finished; another one is refused."""
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps(META))
    src = fake_tfjs_model(tmp_path / "v2", 2)
    real = pub._write_pointer
    monkeypatch.setattr(pub, "_write_pointer", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    assert pub.main(["publish", src, "--base", str(base), "--version", "2", "--metadata", str(metadata)]) == 1
    monkeypatch.setattr(pub, "_write_pointer", real)
    assert latest(base) == "1"
    assert pub.main(["publish", src, "--base", str(base), "--version", "2", "--metadata", str(metadata)]) == 0
    assert latest(base) == "2"
    other = fake_tfjs_model(tmp_path / "v2b", 5)
    capsys.readouterr()
    assert pub.main(["publish", other, "--base", str(base), "--version", "2", "--metadata", str(metadata)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_a_cli_rerun_with_other_metadata_is_refused_not_silently_kept(tmp_path, capsys, monkeypatch):
    """A rerun of a stopped publish with an edited --metadata had exited 0 and kept the first metadata:
    the user believed the channel served what the file said."""
    base = tmp_path / "origin"
    src = fake_tfjs_model(tmp_path / "v2", 2)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(META))
    second.write_text(json.dumps({**META, "review_threshold": 0.5}))
    monkeypatch.setattr(pub, "_write_pointer", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    assert pub.main(["publish", src, "--base", str(base), "--version", "2", "--metadata", str(first)]) == 1
    monkeypatch.undo()
    published = (base / "bloodcell" / "2" / "metadata.json").read_text()
    capsys.readouterr()
    assert pub.main(["publish", src, "--base", str(base), "--version", "2", "--metadata", str(second)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metadata" in err and "review_threshold" in err, err
    assert (base / "bloodcell" / "2" / "metadata.json").read_text() == published
    assert not (base / "bloodcell" / "latest.json").exists()
    # The metadata it was published with finishes it.
    assert pub.main(["publish", src, "--base", str(base), "--version", "2", "--metadata", str(first)]) == 0
    assert latest(base) == "2"


def test_a_second_publisher_of_a_version_cannot_rewrite_it(tmp_path, monkeypatch):
    """The check that a version exists and the writes that follow took no lock: a second publisher of
    the same version (a zombie attempt, a hand-run CLI) rewrote model.json after the first had finished,
    and caches could pair one publish's model.json with the other's metadata.json."""
    import threading

    base = tmp_path / "origin"
    first, second = fake_tfjs_model(tmp_path / "a", 1), fake_tfjs_model(tmp_path / "b", 2)
    outcome = {}

    def run_second():
        try:
            outcome["second"] = pub.publish(second, str(base), "bloodcell", "2", META)["version"]
        except pub.PublishError as err:
            outcome["second"] = str(err)

    real_write, started = pub._write_whole, []

    def write(path, data):  # the second publisher starts while the first writes its metadata.json
        if not started and path.endswith("metadata.json"):
            started.append(threading.Thread(target=run_second))
            started[0].start()
            started[0].join(timeout=1.0)
        real_write(path, data)

    monkeypatch.setattr(pub, "_write_whole", write)
    assert pub.publish(first, str(base), "bloodcell", "2", META)["version"] == "2"
    started[0].join()
    assert "already exists" in outcome["second"], outcome
    model = json.loads((base / "bloodcell" / "2" / "model.json").read_text())
    assert (tmp_path / "a" / "group1-shard1of1.bin").read_bytes() == (
        base / "bloodcell" / "2" / model["weightsManifest"][0]["paths"][0]).read_bytes()


def test_a_publish_holds_the_channel_lock_only_for_its_small_files(tmp_path, monkeypatch):
    """A rollback waits on the lock at most 30 s: a publish writing its shards (megabytes, on a slow
    disk) under the lock could make an urgent rollback fail with 'locked'."""
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "v1", 1), str(base), "bloodcell", "1", META)
    free_during_shards = []
    real_write = pub._write

    def write(path, data):
        if ".bin" in path:
            with pub.channel_lock(str(base), "bloodcell", wait_s=0.0):
                free_during_shards.append(path)
        real_write(path, data)

    monkeypatch.setattr(pub, "_write", write)
    pub.publish(fake_tfjs_model(tmp_path / "v2", 2), str(base), "bloodcell", "2", META)
    assert len(free_during_shards) == 2 and latest(base) == "2"


def test_a_late_second_publisher_never_writes_over_a_live_shard(tmp_path, monkeypatch):
    """A second publisher of a version (a zombie attempt) that found it incomplete before the first
    finished rewrote its shards in place after the pointer had moved: browsers could read a half-written
    shard, and nginx keeps a version's files for a year."""
    base = tmp_path / "origin"
    src = fake_tfjs_model(tmp_path / "v2", 2)
    pub.publish(src, str(base), "bloodcell", "2", META)
    real_published, real_write, over_live = pub._published_model, pub._write, []
    checks = []

    def published_model(folder):  # the late publisher's first look came before the first finished
        checks.append(folder)
        return None if len(checks) == 1 else real_published(folder)

    def write(path, data):
        if os.path.exists(path):
            over_live.append(os.path.basename(path))
        real_write(path, data)

    monkeypatch.setattr(pub, "_published_model", published_model)
    monkeypatch.setattr(pub, "_write", write)
    assert pub.publish(src, str(base), "bloodcell", "2", META, resume=True)["version"] == "2"
    assert over_live == []
    pub.check_version(str(base), "bloodcell", "2")
    assert not list((base / "bloodcell" / "2").glob("*.tmp-*"))


def test_a_rollback_from_a_deleted_version_withdraws_it(tmp_path):
    """The withdrawn list was built from the version folders on disk: an operator who deleted the bad
    version before rolling back left it off, and browsers holding it kept using it."""
    import shutil

    base = tmp_path / "origin"
    for v in ("3", "4", "5"):
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), str(base), "bloodcell", v, META)
    shutil.rmtree(base / "bloodcell" / "5")
    pointer = pub.point_latest(str(base), "bloodcell", "3", pinned=True)
    assert pointer["rolled_back_from"] == "5"
    assert sorted(pointer["withdrawn"]) == ["4", "5"]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_publishing_a_version_again_repairs_a_lost_or_damaged_shard(tmp_path, damage):
    """Shards were written only while model.json was absent: a version that lost one failed every later
    run that handed over the same model, with no way to mend it but by hand."""
    base = tmp_path / "origin"
    source = fake_tfjs_model(tmp_path / "src1", 1)
    pub.publish(source, str(base), "bloodcell", "1", META)
    shard = next((base / "bloodcell" / "1").glob("group1-*.bin"))
    shard.unlink() if damage == "missing" else shard.write_bytes(b"tampered")
    with pytest.raises(pub.PublishError, match="incomplete|corrupt"):
        pub.check_version(str(base), "bloodcell", "1")
    assert pub.publish_or_resume(source, str(base), "bloodcell", "1", META)["version"] == "1"
    pub.check_version(str(base), "bloodcell", "1")


def test_the_cli_says_why_the_channel_stayed_after_a_rollback_was_unpinned(tmp_path, capsys):
    # Channel on 1, rolled back from 3, unpinned: a publish of 2 leaves it there. The CLI had said
    # "latest -> 1 (newer than 2)".
    base = tmp_path / "origin"
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps(META))
    for v in ("1", "3"):
        pub.publish(fake_tfjs_model(tmp_path / f"src{v}", int(v)), str(base), "bloodcell", v, META)
    assert pub.main(["rollback", "--base", str(base), "--version", "1"]) == 0
    assert pub.main(["unpin", "--base", str(base)]) == 0
    capsys.readouterr()
    assert pub.main(["publish", fake_tfjs_model(tmp_path / "src2", 2), "--base", str(base), "--version", "2",
                     "--metadata", str(meta)]) == 0
    assert capsys.readouterr().out.strip() == (
        "bloodcell latest -> 1 (a rollback moved it back from version 3: only a newer version moves it)")


def test_metadata_with_a_number_json_does_not_have_is_refused_before_anything_is_written(tmp_path, capsys):
    # Python's json.dump writes NaN; the schema's bounds let it through, and the shards were written
    # before the pointer's json.dumps failed on it with a line naming no field.
    base = tmp_path / "origin"
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({**META, "review_threshold": float("nan")}))
    assert pub.main(["publish", fake_tfjs_model(tmp_path / "src", 1), "--base", str(base), "--version", "1",
                     "--metadata", str(meta)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "review_threshold" in err and "\n" not in err, err
    assert not (base / "bloodcell" / "1").exists()


@pytest.mark.parametrize("pointer", ['{"model_url": "1/model.json"}', "not json", "[1]"])
def test_a_channel_pointer_edited_by_hand_is_one_line_naming_it(tmp_path, capsys, pointer):
    base = tmp_path / "origin"
    pub.publish(fake_tfjs_model(tmp_path / "src", 1), str(base), "bloodcell", "1", META)
    (base / "bloodcell" / "latest.json").write_text(pointer)
    for command in (["rollback", "--version", "1"], ["list"], ["unpin"]):
        assert pub.main([*command, "--base", str(base)]) == 1, command
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "latest.json" in err and "\n" not in err, (command, err)


def test_a_publish_of_the_same_model_writes_a_lost_metadata_file_again(tmp_path, capsys):
    # Lost shards were written again, a lost metadata.json not: the CLI said "already published with
    # other metadata" and the pipeline's retry "metadata.json is missing".
    base = tmp_path / "origin"
    source = fake_tfjs_model(tmp_path / "src", 1)
    pub.publish(source, str(base), "bloodcell", "1", META)
    written = (base / "bloodcell" / "1" / "metadata.json").read_bytes()
    for again in (lambda: pub.publish(source, str(base), "bloodcell", "1", META),
                  lambda: pub.publish_or_resume(source, str(base), "bloodcell", "1", META)):
        (base / "bloodcell" / "1" / "metadata.json").unlink()
        assert again()["version"] == "1"
        assert (base / "bloodcell" / "1" / "metadata.json").read_bytes() == written
        pub.check_version(str(base), "bloodcell", "1")
