"""A lab's own reviewed cells as a source of examples: review exports of the web client (`*.zip`: the
images in folders named by the reviewer's label, plus a manifest) and plain class folders, in any mix.

One cell is one sha256: duplicates across exports collapse, the latest review wins, and a label that
changed between reviews is reported. Plain class folders count as reviewed before any export (one image
in two of them is refused: which is later cannot be told). Each cell lands on the train or the eval
side by a hash of its sha256, so it stays on its side in every run, and a lab's eval cells never train.
Files are read through tf.io.gfile (a lab folder may be a bucket prefix).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import posixpath
import threading
import typing
import zipfile
import zlib

import jsonschema
import tensorflow as tf

from components.image_example_gen.stable_hash import hash_fraction
from models.features import (NOT_TRAINED_LABELS, REVIEW_EXPORT_FORMAT, REVIEW_EXPORT_VERSION, REVIEW_MANIFEST,
                             REVIEW_MANIFEST_MAX_BYTES)

gfile = tf.io.gfile

# What the browser reads and a reviewer can export; all but RGB JPEG are stored as PNG.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".webp")
MAX_MEMBER_BYTES = 50 * 2**20  # one reviewed image; a larger member is refused before it is inflated
FUTURE_SLACK = datetime.timedelta(days=1)  # a review time further ahead than this is a clock set wrong
CACHED_ZIP_BYTES = 64 * 2**20  # an export this small is kept in memory while its cells are read (one per thread)
# Folders a file system or a NAS share makes in every folder it serves: never a lab, never a class.
SYSTEM_FOLDERS = frozenset({"lost+found", "@eaDir", "#recycle", "#snapshot", "$RECYCLE.BIN", "System Volume Information",
                            "__MACOSX"})

# The export as a whole; each entry of `cells` is checked on its own (CELL_SCHEMA), so one bad entry is
# one refused line and the rest of the export is kept.
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["format", "version", "lab", "exported_at", "cells"],
    "properties": {
        "format": {"const": REVIEW_EXPORT_FORMAT},
        "version": {"const": REVIEW_EXPORT_VERSION},
        "lab": {"type": "string"},
        "exported_at": {"type": "string"},
        # A lab too large for one zip is exported as several, each a whole export: zip `part` of `parts`.
        "part": {"type": "integer", "minimum": 1},
        "parts": {"type": "integer", "minimum": 1},
        "cells": {"type": "array"},
    },
    "dependentRequired": {"part": ["parts"], "parts": ["part"]},
}
CELL_SCHEMA = {
    "type": "object",
    "required": ["file", "sha256", "label", "reviewed_at"],
    "properties": {
        "file": {"type": "string", "minLength": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "label": {"type": "string", "minLength": 1},
        "reviewed_at": {"type": "string"},
    },
}
# What zipfile raises for a damaged zip or a member it cannot read: a bad CRC or deflate stream, an
# encrypted member (RuntimeError), a compression method or zip version it does not implement
# (NotImplementedError), a directory whose offsets, sizes or names are garbage (ValueError, EOFError).
DAMAGED_ZIP = (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, NotImplementedError, ValueError, EOFError)


@dataclasses.dataclass(frozen=True)
class Review:
    sha256: str
    label: str
    reviewed_at: str       # UTC, as review_time writes it (sorts as text); "" for a plain class folder
    order: int             # listing order, breaks ties between equal times
    path: str              # the file, or the export zip holding it
    member: str | None     # the file inside the zip
    rel_path: str          # how the ingest report names it


class ExportHeader(typing.NamedTuple):
    """What an export's manifest says of the export as a whole."""
    lab: str
    exported_at: str
    part: int | None    # which zip of the export (from 1); None in an export that does not number them
    parts: int | None


@dataclasses.dataclass(frozen=True)
class Refused:
    rel_path: str
    reason: str


@dataclasses.dataclass
class LabListing:
    cells: list[Review]                 # latest review of each cell whose label is one of the classes
    refused: list[Refused]
    not_trained: int = 0                # cells whose latest review is one of NOT_TRAINED_LABELS
    held_back: list[Review] = dataclasses.field(default_factory=list)  # those latest reviews
    duplicates: int = 0                 # reviews collapsed into an earlier or later one of the same cell
    relabelled: list[dict] = dataclasses.field(default_factory=list)
    other_lab_exports: list[dict] = dataclasses.field(default_factory=list)  # the manifest names another lab
    incomplete_exports: list[dict] = dataclasses.field(default_factory=list)  # split exports with zips not found

    def side(self, review: Review, eval_fraction: float) -> str:
        return "eval" if hash_fraction(review.sha256) < eval_fraction else "train"


_END_OF_ZIP_BYTES = 22  # the smallest zip: its end-of-directory record alone


def _open_zip(f, length: int) -> zipfile.ZipFile:
    """The zip in f (`length` bytes), read where it lies: its directory, then only the members asked for.
    A file too short to be a zip is told apart first: zipfile seeks before its start, and a GFile answers
    that with its own error, not the OSError zipfile expects."""
    if length < _END_OF_ZIP_BYTES:
        raise zipfile.BadZipFile("File is not a zip file")
    return zipfile.ZipFile(f)


# Per thread: Beam runs bundles side by side in threads (Dataflow: 12 a worker), each reading one
# export's cells in a row (executor.work_units); one cache for all of them swapped exports at nearly
# every cell, reading a whole export again each time.
_held_export = threading.local()


def _read_whole(path: str) -> bytes:
    with gfile.GFile(path, "rb") as f:
        return f.read()


def _zip_bytes(path: str, length: int, mtime_nsec: int) -> bytes:
    """A small export, read once while this thread reads its cells one after another (keyed by size and
    time: a replaced file is read again). One at a time: the last one is let go before the next is read."""
    key = (path, length, mtime_nsec)
    if getattr(_held_export, "key", None) != key:
        release_held_export()
        _held_export.data = _read_whole(path)
        _held_export.key = key
    return _held_export.data


def release_held_export() -> None:
    """Lets this thread's export go once its cells are read: the thread may then idle for the rest of
    the job (Beam keeps finished threads for reuse) or run the Trainer."""
    _held_export.key = _held_export.data = None


def read_member(path: str, member: str) -> bytes:
    """One file of an export. An export up to CACHED_ZIP_BYTES is read whole once (a bucket's file in one
    request); a larger one where it lies, its directory and that file only."""
    stat = gfile.stat(path)
    if stat.length <= CACHED_ZIP_BYTES:
        with zipfile.ZipFile(io.BytesIO(_zip_bytes(path, stat.length, stat.mtime_nsec))) as archive:
            return archive.read(member)
    with gfile.GFile(path, "rb") as f, _open_zip(f, stat.length) as archive:
        return archive.read(member)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def review_time(text: str) -> str | None:
    """An ISO 8601 time with its zone, as fixed-width UTC text (so that text order is time order);
    None when it is not one."""
    try:
        moment = datetime.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return None
        # isoformat pads the year to 4 digits (strftime's %Y does not, below 1000).
        return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")
    except (ValueError, OverflowError):  # not a time; a time whose UTC falls outside years 1-9999
        return None


def _entry_time(cell) -> tuple[str | None, str | None]:
    """(review time as review_time writes it, None) of one manifest entry, or (None, why it cannot be used)."""
    try:
        jsonschema.validate(cell, CELL_SCHEMA)
    except jsonschema.ValidationError as err:
        return None, f"manifest entry: {err.message.splitlines()[0]}"
    when = review_time(cell["reviewed_at"])
    if when is None:
        return None, f"manifest entry: reviewed_at '{cell['reviewed_at'][:40]}' is not an ISO 8601 time with a zone"
    # The latest review wins: one from a computer whose clock runs far ahead would beat every later
    # correction. A day's slack covers time zones set wrong by an hour or so.
    latest_possible = datetime.datetime.now(datetime.timezone.utc) + FUTURE_SLACK
    if when > latest_possible.isoformat(timespec="microseconds"):
        return None, (f"manifest entry: reviewed_at {cell['reviewed_at'][:40]} is in the future: the reviewing "
                      "computer's clock is wrong; set it right, review the cell again, and remove this export")
    return when, None


# Its reviews are lost to this run, and an older review of the same cell would stand unseen.
CUT_SHORT_ZIP = ("a zip cut short or damaged (no directory at its end; an interrupted copy?): copy the export "
                 "again; until then none of its reviews is read, and older reviews of its cells stand")


def _starts_as_zip(path: str) -> bool:
    try:
        with gfile.GFile(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except tf.errors.OpError:
        return False


def read_export(path: str, rel: str, class_names: list[str], order: int
                ) -> tuple[list[Review], list[Refused], ExportHeader | None]:
    """The reviews of one export zip, what in it cannot be used (each with a reason), and what its
    manifest says of the export (None when it is not an export)."""
    with contextlib.ExitStack() as opened:  # not read into memory whole: a large zip may be no export at all
        try:
            length = gfile.stat(path).length
            archive = opened.enter_context(_open_zip(opened.enter_context(gfile.GFile(path, "rb")), length))
        except zipfile.BadZipFile:
            return [], [Refused(rel, CUT_SHORT_ZIP if _starts_as_zip(path) else "not a review export (not a zip file)")], None
        except tf.errors.OpError as err:
            return [], [Refused(rel, f"unreadable file ({first_line(err)})")], None
        except DAMAGED_ZIP as err:
            return [], [Refused(rel, f"not a review export (a damaged zip: {first_line(err)})")], None
        return _read_archive(archive, path, rel, class_names, order)


def _read_archive(archive: zipfile.ZipFile, path: str, rel: str, class_names: list[str], order: int
                  ) -> tuple[list[Review], list[Refused], ExportHeader | None]:
    # A read may fail in the file itself (a bucket's, a share's) as well as in the zip.
    damaged = (*DAMAGED_ZIP, tf.errors.OpError)
    members = {i.filename: i for i in archive.infolist() if not i.is_dir()}
    if REVIEW_MANIFEST not in members:
        return [], [Refused(rel, f"not a review export (no {REVIEW_MANIFEST})")], None
    if members[REVIEW_MANIFEST].file_size > REVIEW_MANIFEST_MAX_BYTES:
        return [], [Refused(rel, f"not a review export ({REVIEW_MANIFEST} of {members[REVIEW_MANIFEST].file_size} bytes)")], None
    try:
        manifest = json.loads(archive.read(REVIEW_MANIFEST))
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except (jsonschema.ValidationError, RecursionError, *damaged) as err:
        detail = err.message.splitlines()[0] if isinstance(err, jsonschema.ValidationError) else first_line(err)
        return [], [Refused(rel, f"not a review export (manifest: {detail})")], None
    header = ExportHeader(manifest["lab"], manifest["exported_at"], manifest.get("part"), manifest.get("parts"))
    if header.part is not None and header.part > header.parts:
        return [], [Refused(rel, f"not a review export (manifest: part {header.part} of {header.parts})")], None
    reviews, refused, listed = [], [], set()
    for number, cell in enumerate(manifest["cells"], 1):
        when, problem = _entry_time(cell)
        if problem:
            named = cell.get("file") if isinstance(cell, dict) and isinstance(cell.get("file"), str) else None
            if named:
                listed.add(named)
            refused.append(Refused(f"{rel}!{named or f'cell {number}'}", problem))
            continue
        member, where = cell["file"], f"{rel}!{cell['file']}"
        listed.add(member)
        label = cell["label"]
        info = members.get(member)
        if info is None:
            refused.append(Refused(where, "the manifest names a file the zip does not hold"))
        elif label not in class_names and label not in NOT_TRAINED_LABELS:
            refused.append(Refused(where, f"label '{label}' is not one of the classes"))
        elif not member.lower().endswith(IMAGE_EXTENSIONS):
            refused.append(Refused(where, "not an image file extension"))
        elif info.file_size > MAX_MEMBER_BYTES:
            refused.append(Refused(where, f"image too large: {info.file_size} bytes in the zip"))
        else:
            try:
                data = archive.read(member)
            except (RuntimeError, NotImplementedError) as err:  # encrypted, or an unknown compression
                refused.append(Refused(where, f"cannot read it in the zip ({first_line(err)})"))
                continue
            except damaged as err:  # a bad CRC, a broken deflate stream
                refused.append(Refused(where, f"corrupt data in the zip ({first_line(err)})"))
                continue
            if _sha256(data) != cell["sha256"]:
                refused.append(Refused(where, "sha256 does not match the manifest"))
            else:
                reviews.append(Review(cell["sha256"], label, when, order, path, member, where))
    refused += [Refused(f"{rel}!{m}", "file not listed in the manifest")
                for m in sorted(set(members) - listed - {REVIEW_MANIFEST})]
    return reviews, refused, header


def walk_files(root: str, unreadable: list[tuple[str, str]] | None = None):
    """Every file under root but hidden ones and those in hidden or system folders, which are never
    entered (a share's lost+found may not even be listable). A folder that cannot be listed goes into
    `unreadable` as (path, reason) when it is given; otherwise its tf.errors.OpError is raised."""
    try:
        entries = sorted(e.rstrip("/") for e in gfile.listdir(root))
    except tf.errors.NotFoundError:  # gone while listed (a folder being moved): as gfile.walk does
        return
    except tf.errors.OpError as err:
        if unreadable is None:
            raise
        unreadable.append((root, first_line(err)))
        return
    folders = []
    for name in entries:
        path = os.path.join(root, name)
        if gfile.isdir(path):
            if not ignored_name(name):
                folders.append(path)
        elif not name.startswith("."):
            yield path
    for folder in folders:
        yield from walk_files(folder, unreadable)


UNZIPPED_EXPORT = ("an unzipped review export (a browser such as Safari unzips downloads): put the "
                   "export's .zip file itself in the lab's folder")


def _spilled_export(root: str) -> set[str]:
    """The files (relative to root, with '/') of an unzipped export whose contents were copied straight
    into root: its manifest and the files it lists. Empty when root holds no export manifest."""
    path = os.path.join(root, REVIEW_MANIFEST)
    try:
        if not gfile.exists(path) or gfile.stat(path).length > REVIEW_MANIFEST_MAX_BYTES:
            return set()
        with gfile.GFile(path, "rb") as f:
            manifest = json.loads(f.read())
    except (tf.errors.OpError, ValueError, RecursionError):  # not readable or not JSON: not an export
        return set()
    if not isinstance(manifest, dict) or manifest.get("format") != REVIEW_EXPORT_FORMAT:
        return set()
    cells = manifest.get("cells") if isinstance(manifest.get("cells"), list) else []
    return {REVIEW_MANIFEST} | {c["file"] for c in cells if isinstance(c, dict) and isinstance(c.get("file"), str)}


def list_lab(name: str, root: str, class_names: list[str]) -> LabListing:
    """Every review under a lab's folder, collapsed to the latest review of each cell."""
    reviews: list[Review] = []
    refused: list[Refused] = []
    other_labs: list[dict] = []
    headers: list[ExportHeader] = []
    unreadable: list[tuple[str, str]] = []
    paths = sorted(walk_files(root, unreadable))
    refused += [Refused(posixpath.normpath(posixpath.join("labs", name, os.path.relpath(folder, root).replace(os.sep, "/"))),
                        f"a folder that cannot be read ({reason})") for folder, reason in unreadable]
    # Folder names as a reviewer may type them (neutrophil, Unsure) are the labels they name.
    labels = {label.upper(): label for label in (*class_names, *NOT_TRAINED_LABELS)}
    # Read as plain class folders, an unzipped export's images would count as reviewed before every
    # export, so an older zip's label would beat this export's newer one.
    spilled = _spilled_export(root)
    spilled_paths = {p for p in paths if os.path.relpath(p, root).replace(os.sep, "/") in spilled}
    if spilled_paths:
        refused.append(Refused(posixpath.join("labs", name, REVIEW_MANIFEST),
                               f"{UNZIPPED_EXPORT} ({len(spilled_paths)} files of it are not read)"))
        paths = [p for p in paths if p not in spilled_paths]
    unzipped = {parts[0] for parts in (os.path.relpath(p, root).split(os.sep) for p in paths)
                if len(parts) == 2 and parts[1] == REVIEW_MANIFEST and parts[0].upper() not in labels}
    refused += [Refused(posixpath.join("labs", name, folder), UNZIPPED_EXPORT) for folder in sorted(unzipped)]
    for order, path in enumerate(paths):
        rel = posixpath.join("labs", name, os.path.relpath(path, root).replace(os.sep, "/"))
        parts = os.path.relpath(path, root).split(os.sep)
        if len(parts) > 1 and parts[0] in unzipped:
            continue  # one line for the folder, above
        if path.lower().endswith(".zip") and len(parts) == 1:
            got, bad, header = read_export(path, rel, class_names, order)
            reviews += got
            refused += bad
            if header:
                headers.append(header)
            if header and header.lab != name:  # the folder names the lab; the page's name may be a slip
                other_labs.append({"file": rel, "lab": header.lab})
        elif len(parts) < 2:
            refused.append(Refused(rel, "not in a class folder or a review export"))
        elif parts[0].upper() not in labels:
            refused.append(Refused(rel, f"unknown class folder '{parts[0]}'"))
        elif not path.lower().endswith(IMAGE_EXTENSIONS):
            refused.append(Refused(rel, "not an image file extension"))
        else:
            try:
                with gfile.GFile(path, "rb") as f:
                    data = f.read(MAX_MEMBER_BYTES + 1)  # as in an export: no more is read into memory
            except tf.errors.OpError as err:
                refused.append(Refused(rel, f"unreadable file ({first_line(err)})"))
                continue
            if len(data) > MAX_MEMBER_BYTES:
                refused.append(Refused(rel, f"image too large: over {MAX_MEMBER_BYTES} bytes"))
                continue
            reviews.append(Review(_sha256(data), labels[parts[0].upper()], "", order, path, None, rel))
    listing = LabListing(cells=[], refused=refused, other_lab_exports=other_labs,
                         incomplete_exports=incomplete_exports(headers))
    by_cell: dict[str, list[Review]] = {}
    for review in reviews:
        by_cell.setdefault(review.sha256, []).append(review)
    for sha, history in sorted(by_cell.items()):
        history.sort(key=lambda r: (r.reviewed_at, r.order))
        latest = history[-1]
        if not latest.reviewed_at and len({r.label for r in history}) > 1:
            # Plain folders say nothing of when: which label is the later one cannot be told.
            folders = ", ".join(sorted({r.label for r in history}))
            listing.refused += [Refused(r.rel_path, f"the same image is in class folders {folders}: keep it in one")
                                for r in history]
            continue
        listing.duplicates += len(history) - 1
        labels = [r.label for r in history]
        if len(set(labels)) > 1:
            listing.relabelled.append({"sha256": sha, "labels": labels, "now": latest.label,
                                       "files": [r.rel_path for r in history]})
        if latest.label in NOT_TRAINED_LABELS:
            listing.not_trained += 1
            listing.held_back.append(latest)
        else:
            listing.cells.append(latest)
    return listing


def incomplete_exports(headers: list[ExportHeader]) -> list[dict]:
    """The split exports (one lab's, one time) of which some zips were not found, with their numbers."""
    found: dict[tuple[str, str], set[int]] = {}
    parts: dict[tuple[str, str], int] = {}
    for header in headers:
        if header.part is not None:
            key = (header.lab, header.exported_at)
            found.setdefault(key, set()).add(header.part)
            parts[key] = max(parts.get(key, 0), header.parts)
    return [{"lab": lab, "exported_at": at, "parts": parts[lab, at],
             "missing": sorted(set(range(1, parts[lab, at] + 1)) - numbers)}
            for (lab, at), numbers in sorted(found.items()) if len(numbers) < parts[lab, at]]


def drop_cross_lab_duplicates(listings: dict[str, LabListing]) -> None:
    """One image is one lab's cell: of the labs whose latest review holds it (a class, or a label never
    trained on), the latest review counts and the other labs' cells of it are refused (each lab's
    listing says so). When no time tells which is latest (plain class folders, or one time in two
    labs), one label is kept in the first lab, and differing labels are all refused."""
    by_cell: dict[str, list[tuple[str, Review]]] = {}
    for name, listing in sorted(listings.items()):
        for review in (*listing.cells, *listing.held_back):
            by_cell.setdefault(review.sha256, []).append((name, review))
    for reviews in (r for r in by_cell.values() if len(r) > 1):
        latest = max(review.reviewed_at for _, review in reviews)
        at_latest = [(name, review) for name, review in reviews if review.reviewed_at == latest]
        if latest and len(at_latest) == 1:
            (winner_lab, winner), = at_latest
            reason = f"reviewed again later in lab {winner_lab} ({winner.label}, {latest}): that review counts"
        elif len({review.label for _, review in at_latest}) == 1:
            winner_lab, winner = at_latest[0]
            reason = f"the same image is a cell of lab {winner_lab} too ({winner.label}): counted there"
        else:
            winner_lab, winner = None, None
            reason = (f"the same image is reviewed in labs {' and '.join(name for name, _ in reviews)} with "
                      f"other labels{' at the same time' if latest else ''}: keep it in one lab")
        for name, review in reviews:
            if review is not winner and review in listings[name].cells:
                listings[name].cells.remove(review)
                listings[name].refused.append(Refused(review.rel_path, reason))


def ignored_name(name: str) -> bool:
    """A hidden or system file or folder: never an input."""
    return name.startswith(".") or name in SYSTEM_FOLDERS


def _top_entries(labs_root: str) -> list[tuple[str, str, bool]]:
    """(name, path, is a folder) of each entry directly in labs_root but hidden and system ones; none for
    a missing root. A root that cannot be read, or is a file, raises: isdir alone is False on any error,
    and a bucket the pods may not read would have been taken for no labs."""
    if not labs_root or not gfile.exists(labs_root):  # exists raises but for "not found"
        return []
    if not gfile.isdir(labs_root):
        raise NotADirectoryError(f"the labs folder {labs_root} is a file, not a folder of labs")
    paths = [(e.rstrip("/"), os.path.join(labs_root, e.rstrip("/"))) for e in sorted(gfile.listdir(labs_root))
             if not ignored_name(e.rstrip("/"))]
    return [(name, path, gfile.isdir(path)) for name, path in paths]


STRAY = "not in a lab folder (put it in labs/<lab name>/)"


def stray_files(labs_root: str) -> list[Refused]:
    """Files directly in labs_root: an export belongs in its lab's folder, which names the lab."""
    return [Refused(posixpath.join("labs", name), STRAY)
            for name, _, is_dir in _top_entries(labs_root) if not is_dir]


def discover(labs_root: str) -> dict[str, str]:
    """Every sub-folder of labs_root is one lab, by its name. A missing root holds no lab."""
    return {name: path for name, path, is_dir in _top_entries(labs_root) if is_dir}
