"""Publishing a tfjs graph model to a CDN origin, and rolling the channel pointer back.

Layout under a base URI (a local folder, or gs:// through tf.io.gfile; the locked TensorFlow has no s3://):

    <base>/<model_name>/<version>/model.json            shard paths rewritten to the hashed names
    <base>/<model_name>/<version>/<shard>.<sha256[:16]>.bin
    <base>/<model_name>/<version>/metadata.json         class names, input size, metrics, run, ...
    <base>/<model_name>/latest.json                     {"version": ..., "model_url": ...}: the channel

Versioned files never change once written (the CDN may cache them for a year); only latest.json
moves. It is written last, to a temporary name and then renamed, after every file of the version was
checked, so no reader ever sees a pointer to half a version.

Who moves latest.json: a publish moves it forward only (never to an older version than the one in
place, nor to one a rollback rolled back from) and not at all while a rollback pins it; a rollback
pins it, `unpin` lifts the pin. Moves of
one channel take turns through a lock file (<base>/<model_name>/.channel.lock; local folders only:
an object store has no lock, so run one publisher per channel there).

    python -m components.tfjs_publisher.publish publish TFJS_DIR --base URI --model-name NAME --version V --metadata FILE
    python -m components.tfjs_publisher.publish rollback --base URI --model-name NAME --version V
    python -m components.tfjs_publisher.publish unpin --base URI --model-name NAME
    python -m components.tfjs_publisher.publish list --base URI --model-name NAME
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
import uuid

import tensorflow as tf

from components.tfjs_publisher.metadata import MetadataError, check_metadata

gfile = tf.io.gfile
POINTER = "latest.json"
MODEL_JSON = "model.json"
METADATA = "metadata.json"
LOCK = ".channel.lock"
LOCK_WAIT_S = 30.0


class PublishError(RuntimeError):
    """One line for the user."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: str) -> bytes:
    with gfile.GFile(path, "rb") as f:
        return f.read()


def _local(path: str) -> bool:
    return "://" not in path


def _sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: str, data: bytes) -> None:
    """On a local disk the file is synced: a rename that names it later must not outlive it in a power cut."""
    if not _local(path):
        with gfile.GFile(path, "wb") as f:
            f.write(data)
        return
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_whole(path: str, data: bytes) -> None:
    """Written under a temporary name, then renamed: a reader finds all of it or none."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    _write(tmp, data)
    gfile.rename(tmp, path, overwrite=True)
    if _local(path):
        _sync_folder(os.path.dirname(path))


def _published_model(folder: str) -> dict | None:
    """The version's model.json, or None when the version was never completed (no model.json, or one
    cut short by an earlier publisher's crash: then the version can be published again)."""
    path = os.path.join(folder, MODEL_JSON)
    if not gfile.exists(path):
        return None
    try:
        model = json.loads(_read(path))
    except ValueError:
        return None
    return model if isinstance(model, dict) else None


def hashed_name(name: str, data: bytes) -> str:
    stem, ext = os.path.splitext(name)
    return f"{stem}.{_sha256(data)[:16]}{ext}"


def _segment(kind: str, name: str) -> str:
    """A model name or version as one folder name: nothing that could reach outside --base."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise PublishError(f"{kind} '{name}' must be letters, digits, '.', '_' or '-', and not '.' or '..'")
    return name


def version_dir(base: str, model_name: str, version: str) -> str:
    return os.path.join(base, _segment("model name", model_name), _segment("version", str(version)))


def _check_numeric(version: str) -> None:
    if not str(version).isdigit():
        # TF Serving's versions are numbers, and "newer" is numeric: a name could move the channel back.
        raise PublishError(f"version '{version}' must be a number (TF Serving's version of the model)")


def check_version(base: str, model_name: str, version: str) -> dict:
    """The version's model.json, after checking every shard it names exists with its content hash and
    that the web client would take the version's pointer and metadata."""
    folder = version_dir(base, model_name, version)
    _check_numeric(version)
    model = _published_model(folder)
    if model is None:
        raise PublishError(f"version {version} of {model_name} is not published under {base} "
                           f"(no complete {MODEL_JSON})")
    for group in model.get("weightsManifest", []):
        for shard in group["paths"]:
            path = os.path.join(folder, shard)
            if not gfile.exists(path):
                raise PublishError(f"version {version} is incomplete: {shard} is missing")
            digest = os.path.splitext(shard)[0].rsplit(".", 1)[-1]
            if not _sha256(_read(path)).startswith(digest):
                raise PublishError(f"version {version} is corrupt: {shard} does not match its hash")
    if not gfile.exists(os.path.join(folder, METADATA)):
        raise PublishError(f"version {version} is incomplete: {METADATA} is missing")
    try:
        metadata = check_metadata(json.loads(_read(os.path.join(folder, METADATA))))
    except (MetadataError, ValueError) as err:
        raise PublishError(f"version {version}'s {METADATA} would be refused by the web client: {err}") from None
    if str(metadata["version"]) != str(version):
        raise PublishError(f"version {version}'s {METADATA} is of version {metadata['version']}: a folder copied "
                           f"by hand? (the web client refuses it)")
    return model


def read_pointer(base: str, model_name: str) -> dict | None:
    path = os.path.join(base, _segment("model name", model_name), POINTER)
    if not gfile.exists(path):
        return None
    try:
        pointer = json.loads(_read(path))
    except ValueError as err:
        pointer, problem = None, f"is not JSON ({err})"
    else:
        problem = None if isinstance(pointer, dict) and isinstance(pointer.get("version"), str) else "names no version"
    if problem:
        # Only a hand edit or another tool writes one so: every move here writes the pointer whole.
        raise PublishError(f"{path} {problem}: mend it, or delete it and roll back (the versions it withdrew "
                           f"are then forgotten)")
    return pointer


@contextlib.contextmanager
def channel_lock(base: str, model_name: str, wait_s: float = LOCK_WAIT_S):
    """Moves of one channel take turns. A local folder only: an object store offers no lock."""
    if not _local(base):
        yield
        return
    folder = os.path.join(base, _segment("model name", model_name))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, LOCK), "a") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PublishError(f"the {model_name} channel is locked by another publish or rollback "
                                       f"for over {wait_s:g} s ({handle.name}); try again") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_pointer(base: str, model_name: str, version: str, pinned: bool, rolled_back_from: str | None,
                   withdrawn: list[str] | None = None) -> dict:
    pointer = {"version": str(version), "model_url": f"{version}/{MODEL_JSON}",
               "metadata_url": f"{version}/{METADATA}", "pinned": pinned}
    if rolled_back_from:
        pointer["rolled_back_from"] = rolled_back_from
    pointer["withdrawn"] = list(withdrawn or [])  # always: without it the page reads the older rule
    _write_whole(os.path.join(base, _segment("model name", model_name), POINTER), json.dumps(pointer, indent=2).encode())
    return pointer


def _versions_between(base: str, model_name: str, low: str, high: str) -> list[str]:
    """The published versions above `low`, up to `high`."""
    versions, _ = list_versions(base, model_name)
    return [v for v in versions if v.isdigit() and int(low) < int(v) <= int(high)]


def _withdrawn_versions(base: str, model_name: str, current: dict) -> list[str]:
    """The pointer's withdrawn list; for a pointer an older publisher wrote (no list), the versions its
    rolled_back_from covered above the channel's version, as the page read them then."""
    if "withdrawn" in current:
        return [str(v) for v in current["withdrawn"]]
    floor, version = str(current.get("rolled_back_from") or ""), str(current.get("version") or "")
    if not (floor.isdigit() and version.isdigit()):
        return []
    return _versions_between(base, model_name, version, floor)


def point_latest(base: str, model_name: str, version: str, pinned: bool = False) -> dict:
    """Atomically repoints <base>/<model_name>/latest.json at a checked version, whatever is there. A
    rollback (pinned, so later publishes leave it) also records the version it rolled back from: a
    publish never moves the channel to that one or an older one, even after `unpin` (a retried
    publish of the bad version would have). Any move back lists the versions it stepped back over in
    `withdrawn`, kept by every later move: a browser holding one stops using it (web/src/channel.js)."""
    check_version(base, model_name, version)
    with channel_lock(base, model_name):
        current = read_pointer(base, model_name) or {}
        floor = current.get("rolled_back_from")
        withdrawn = [v for v in _withdrawn_versions(base, model_name, current) if v != str(version)]
        if _is_older(str(version), str(current.get("version"))):
            if pinned and not rolled_back(current["version"], current):
                floor = current["version"]
            # The version stepped back from counts even when its folder was deleted first.
            stepped_over = {*_versions_between(base, model_name, version, current["version"]), current["version"]}
            withdrawn += sorted((v for v in stepped_over if v not in withdrawn), key=int)
        return _write_pointer(base, model_name, version, pinned, floor, withdrawn)


def unpin(base: str, model_name: str) -> dict:
    """Lifts a rollback's pin, leaving the channel on its version. The pointer is read under the lock:
    a rollback in between is not undone."""
    with channel_lock(base, model_name):
        current = read_pointer(base, model_name)
        if not current:
            raise PublishError(f"{model_name} has no channel under {base}")
        check_version(base, model_name, current["version"])
        return _write_pointer(base, model_name, current["version"], False, current.get("rolled_back_from"),
                              _withdrawn_versions(base, model_name, current))


def _is_older(version: str, than: str) -> bool:
    return version.isdigit() and than.isdigit() and int(version) < int(than)


def rolled_back(version: str, pointer: dict | None) -> bool:
    """A version a rollback rolled back from (or older than one): publishes leave the channel."""
    floor = str((pointer or {}).get("rolled_back_from") or "")
    return floor.isdigit() and str(version).isdigit() and int(version) <= int(floor)


def _advance_locked(base: str, model_name: str, version: str) -> dict:
    """A publish's move of the channel, under its lock: not while a rollback pins it, never to a version
    a rollback rolled back from, and never back to an older version than the one in place (two
    publishes that cross end on the newer). Returns the pointer in place afterwards: its version
    differs from `version` when the channel stayed."""
    check_version(base, model_name, version)
    current = read_pointer(base, model_name)
    if current and (current.get("pinned") or _is_older(str(version), current["version"])
                    or rolled_back(version, current)):
        return current
    withdrawn = [v for v in _withdrawn_versions(base, model_name, current or {}) if v != str(version)]
    return _write_pointer(base, model_name, version, False, (current or {}).get("rolled_back_from"), withdrawn)


def _check_same_metadata(folder: str, version: str, metadata: dict) -> None:
    """Finishing a stopped publish must not leave the user believing other metadata was published."""
    try:
        published = json.loads(_read(os.path.join(folder, METADATA)))
    except (OSError, tf.errors.OpError, ValueError):
        published = {}
    metadata = json.loads(json.dumps(metadata))  # as it would be written: tuples become lists
    if published != metadata:
        keys = sorted(k for k in set(published) | set(metadata) if published.get(k) != metadata.get(k))
        raise PublishError(f"version {version} is already published with other metadata (differs in: "
                           f"{', '.join(keys)}); versions are immutable: publish it with the metadata it "
                           f"has, or as a new version")


def _repair_shards(folder: str, shards: dict[str, bytes]) -> None:
    """Writes again each shard of a complete version that was lost or damaged. A shard's name is its
    content's hash, so this cannot change what the version holds."""
    for name, data in shards.items():
        path = os.path.join(folder, name)
        if not gfile.exists(path) or _sha256(_read(path)) != _sha256(data):
            _write_whole(path, data)


def publish(tfjs_dir: str, base: str, model_name: str, version: str, metadata: dict, resume: bool = False) -> dict:
    """Copies a converted tfjs graph model into the origin under content-hashed shard names, then
    moves the channel pointer. An existing complete version is never overwritten: when it holds this
    very model (a publish stopped before it moved the pointer), or with `resume` whatever it holds,
    the pointer is moved to it; otherwise it is refused. Metadata the web client would refuse stops it
    before anything is written."""
    folder = version_dir(base, model_name, version)
    _check_numeric(version)
    if not isinstance(metadata, dict):
        raise PublishError(f"not published: the metadata must be a JSON object, not {type(metadata).__name__}")
    metadata = {**metadata, "version": str(version)}
    try:
        check_metadata(metadata)
    except MetadataError as err:
        raise PublishError(f"not published: {err}") from None
    model = json.loads(_read(os.path.join(tfjs_dir, MODEL_JSON)))
    shards = {}
    for group in model.get("weightsManifest", []):
        renamed = []
        for shard in group["paths"]:
            data = _read(os.path.join(tfjs_dir, shard))
            renamed.append(hashed_name(shard, data))
            shards[renamed[-1]] = data
        group["paths"] = renamed
    if _published_model(folder) is None:
        # Shards are named by their content, so they are written before the lock: a rollback waits on
        # the lock no longer than a publish takes to write two small files. Each is renamed into place
        # whole: a late second publisher may be rewriting a version that went live meanwhile.
        gfile.makedirs(folder)
        for name, data in shards.items():
            _write_whole(os.path.join(folder, name), data)
    # Under the channel's lock from the check to the pointer: a second publisher of this version (a
    # zombie attempt, a hand-run CLI) must not rewrite a version once it is complete.
    with channel_lock(base, model_name):
        existing = _published_model(folder)
        metadata_path = os.path.join(folder, METADATA)
        metadata_bytes = json.dumps(metadata, indent=2, allow_nan=False).encode()
        if existing is not None:
            if not resume:
                if existing != model:
                    raise PublishError(f"version {version} of {model_name} already exists under {base}; "
                                       f"versions are immutable")
                if gfile.exists(metadata_path):
                    _check_same_metadata(folder, version, metadata)
            if existing == model:  # this very model: a shard lost or damaged, or the metadata lost, is written again
                _repair_shards(folder, shards)
                if not gfile.exists(metadata_path):
                    _write_whole(metadata_path, metadata_bytes)
            return _advance_locked(base, model_name, version)
        _write_whole(metadata_path, metadata_bytes)
        # model.json last among the version's files, and whole: it is what marks the version complete.
        _write_whole(os.path.join(folder, MODEL_JSON), json.dumps(model).encode())
        return _advance_locked(base, model_name, version)


def publish_or_resume(tfjs_dir: str, base: str, model_name: str, version: str, metadata: dict) -> dict:
    """publish(), except that a version already published whole is only pointed to again: a retried
    step that stopped before moving the pointer, or a rerun under another browser.quantization (the
    version stays as browsers cached it; published_metadata says what it holds)."""
    return publish(tfjs_dir, base, model_name, version, metadata, resume=True)


def published_metadata(base: str, model_name: str, version: str) -> dict:
    return json.loads(_read(os.path.join(version_dir(base, model_name, version), METADATA)))


def list_versions(base: str, model_name: str) -> tuple[list[str], str | None]:
    root = os.path.join(base, _segment("model name", model_name))
    if not gfile.isdir(root):
        return [], None
    versions = sorted((e.rstrip("/") for e in gfile.listdir(root) if gfile.isdir(os.path.join(root, e))),
                      key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    pointer = read_pointer(base, model_name)
    return versions, pointer["version"] if pointer else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.tfjs_publisher.publish", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["publish", "rollback", "unpin", "list"])
    parser.add_argument("tfjs_dir", nargs="?", help="publish: the converter's output folder")
    parser.add_argument("--base", required=True, help="CDN origin: folder or gs://...")
    parser.add_argument("--model-name", default="bloodcell")
    parser.add_argument("--version", help="publish / rollback: the version")
    parser.add_argument("--metadata", help="publish: the model's metadata.json (required; checked against "
                                           "what the web client reads)")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            versions, current = list_versions(args.base, args.model_name)
            if not versions:
                raise PublishError(f"no version of {args.model_name} is published under {args.base}")
            pointer = read_pointer(args.base, args.model_name) or {}
            for v in versions:
                try:
                    incomplete = _published_model(version_dir(args.base, args.model_name, v)) is None
                except PublishError:  # a folder no publish made: listed, never read
                    print(f"{v}  (not a version: its name is not one a publish writes)")
                    continue
                away = _is_older(str(current), v) and rolled_back(v, pointer)
                print(f"{v}{('  <- latest' + (' (pinned by a rollback)' if pointer.get('pinned') else '')) if v == current else ''}"
                      f"{'  (rolled back from: the channel does not return to it)' if away else ''}"
                      f"{'  (incomplete: a publish that did not finish)' if incomplete else ''}")
            return 0
        if args.command == "unpin":
            current = unpin(args.base, args.model_name)
            print(f"{args.model_name} latest -> {current['version']}, no longer pinned: the next publish moves it")
            return 0
        if not args.version:
            raise PublishError(f"{args.command} needs --version")
        if args.command == "rollback":
            pointer = point_latest(args.base, args.model_name, args.version, pinned=True)
            print(f"{args.model_name} latest -> {pointer['version']}, pinned: publishes leave the channel "
                  f"until `unpin`")
            return 0
        else:
            if not args.tfjs_dir:
                raise PublishError("publish needs the converter's output folder")
            if not args.metadata:
                raise PublishError("publish needs --metadata: the web client cannot use a model without it")
            metadata = json.loads(_read(args.metadata))
            pointer = publish(args.tfjs_dir, args.base, args.model_name, args.version, metadata)
        stayed = "" if pointer["version"] == args.version else (
            " (pinned by a rollback)" if pointer.get("pinned") else f" (newer than {args.version})"
            if _is_older(args.version, pointer["version"]) else
            f" (a rollback moved it back from version {pointer['rolled_back_from']}: only a newer version moves it)")
        print(f"{args.model_name} latest -> {pointer['version']}{stayed}")
        return 0
    except (PublishError, tf.errors.OpError, OSError, ValueError) as err:
        print(f"error: {str(err).strip().splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
