"""A lab's reviewed cells as a source (components/image_example_gen/lab_sources.py): exports and class
folders, duplicates and relabels, the stable train/eval side, and bad exports reported one line each."""
from __future__ import annotations

import os
import shutil
import zipfile

import pytest

from components.image_example_gen import image_reader, lab_sources
from components.image_example_gen.driver import labs_fingerprint
from testkit import review_export
from testkit.images import CLASSES, sample_jpegs


@pytest.fixture
def images():
    return sample_jpegs("TRAIN", "NEUTROPHIL")[:6]


def _reasons(listing):
    return {r.rel_path.split("!")[-1]: r.reason for r in listing.refused}


def test_an_export_and_a_class_folder_become_cells_with_their_labels(tmp_path, images):
    lab = tmp_path / "tecom"
    review_export.write_export(lab / "a.zip", [review_export.cell(images[0], "NEUTROPHIL"),
                                               review_export.cell(images[1], "MONOCYTE"),
                                               review_export.cell(images[2], "UNSURE")])
    (lab / "LYMPHOCYTE").mkdir()
    shutil.copy(images[3], lab / "LYMPHOCYTE" / "x.jpeg")
    listing = lab_sources.list_lab("tecom", str(lab), CLASSES)
    assert sorted(c.label for c in listing.cells) == ["LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"]
    assert listing.not_trained == 1 and not listing.refused
    candidates, rejected = image_reader.lab_candidates("tecom", listing, CLASSES, 0.3)
    assert {c.source for c in candidates} == {"tecom"} and not rejected
    zipped = [c for c in candidates if c.member]
    assert image_reader.read_image(zipped[0].path, 10**7, zipped[0].member)[1:] == (240, 320)


def test_the_latest_review_wins_and_a_relabel_is_reported(tmp_path, images):
    lab = tmp_path / "lab"
    review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "NEUTROPHIL", "2026-12-01T10:00:00Z"),
                                               review_export.cell(images[1], "MONOCYTE", "2026-12-01T10:00:00Z")])
    review_export.write_export(lab / "2.zip", [review_export.cell(images[0], "EOSINOPHIL", "2026-12-02T09:00:00Z"),
                                               review_export.cell(images[1], "MONOCYTE", "2026-12-02T09:00:00Z")])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert sorted(c.label for c in listing.cells) == ["EOSINOPHIL", "MONOCYTE"]
    assert listing.duplicates == 2
    assert [r["labels"] for r in listing.relabelled] == [["NEUTROPHIL", "EOSINOPHIL"]]


def test_a_cell_stays_on_its_side_whatever_else_the_lab_holds(tmp_path):
    jpegs = [p for cls in CLASSES for p in sample_jpegs("TRAIN", cls)]
    lab = tmp_path / "lab"
    review_export.write_export(lab / "1.zip", [review_export.cell(p, "NEUTROPHIL") for p in jpegs[:20]])
    first = lab_sources.list_lab("lab", str(lab), CLASSES)
    sides = {c.sha256: first.side(c, 0.3) for c in first.cells}
    assert set(sides.values()) == {"train", "eval"}
    review_export.write_export(lab / "2.zip", [review_export.cell(p, "NEUTROPHIL") for p in jpegs[10:30]])
    second = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert all(second.side(c, 0.3) == sides[c.sha256] for c in second.cells if c.sha256 in sides)


def test_bad_exports_are_one_line_each_and_lose_nothing_else(tmp_path, images):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "notzip.zip").write_bytes(b"PK but not really")
    review_export.write_export(lab / "nomanifest.zip", [], manifest_overrides={"format": "something else"})
    good = review_export.cell(images[0], "NEUTROPHIL")
    tampered = {**review_export.cell(images[1], "NEUTROPHIL"), "_bytes": images[2].read_bytes()}
    missing = {**review_export.cell(images[3], "MONOCYTE"), "_bytes": None}
    alien = review_export.cell(images[4], "PLATELET")
    review_export.write_export(lab / "mixed.zip", [good, tampered, missing, alien],
                               extra_files={"stray.jpeg": images[5].read_bytes()})
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    reasons = _reasons(listing)
    assert reasons["labs/lab/notzip.zip"] == "not a review export (not a zip file)"
    assert reasons["labs/lab/nomanifest.zip"].startswith("not a review export (manifest:")
    assert reasons[tampered["file"]] == "sha256 does not match the manifest"
    assert reasons[missing["file"]] == "the manifest names a file the zip does not hold"
    assert reasons[alien["file"]] == "label 'PLATELET' is not one of the classes"
    assert reasons["stray.jpeg"] == "file not listed in the manifest"
    assert all("\n" not in r for r in reasons.values())
    assert [c.sha256 for c in listing.cells] == [good["sha256"]]


def test_a_new_export_changes_the_ingest_fingerprint(tmp_path, images):
    labs = tmp_path / "labs"
    (labs / "lab").mkdir(parents=True)
    before = labs_fingerprint({"labs_root": str(labs)})
    review_export.write_export(labs / "lab" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    after = labs_fingerprint({"labs_root": str(labs)})
    assert before != after
    os.utime(labs / "lab" / "1.zip", ns=(1, 1))
    assert labs_fingerprint({"labs_root": str(labs)}) != after


def test_discover_lists_each_lab_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert lab_sources.discover(str(tmp_path)) == {"a": str(tmp_path / "a")}
    assert lab_sources.discover(str(tmp_path / "none")) == {}


def test_a_labs_prefix_that_cannot_be_read_is_an_error_not_no_labs():
    """An unreadable labs prefix (a scheme no file system here reads, a bucket the pods may not read) was
    taken as "no labs": TensorFlow's isdir is False on any error. A cluster then trained week after week
    without the labs' reviews, and said nothing."""
    import tensorflow as tf

    with pytest.raises(tf.errors.OpError, match="nosuch"):
        lab_sources.discover("nosuch://bucket/labs")


def test_a_labs_folder_that_is_a_file_is_an_error_not_no_labs(tmp_path):
    (tmp_path / "labs.zip").write_bytes(b"PK")  # labs.dir pointed at an export
    with pytest.raises(NotADirectoryError, match="is a file, not a folder of labs"):
        lab_sources.discover(str(tmp_path / "labs.zip"))


def test_a_corrupt_member_is_one_refused_line_and_the_rest_is_kept(tmp_path, images):
    lab = tmp_path / "lab"
    good, bad = review_export.cell(images[0], "NEUTROPHIL"), review_export.cell(images[1], "MONOCYTE")
    path = review_export.write_export(lab / "1.zip", [good, bad])  # stored, not deflated: bytes findable
    raw = bytearray(path.read_bytes())
    at = raw.find(bad["_bytes"][1000:1200]) + 100  # past the header every JPEG shares
    raw[at] ^= 0xFF  # the CRC no longer matches
    path.write_bytes(bytes(raw))
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert [c.sha256 for c in listing.cells] == [good["sha256"]]
    assert _reasons(listing)[bad["file"]].startswith("corrupt data in the zip")


@pytest.mark.parametrize("fmt, suffix", [("WEBP", ".webp"), ("GIF", ".gif")])
def test_a_webp_or_gif_the_browser_read_is_ingested_as_a_png_of_its_pixels(tmp_path, images, fmt, suffix):
    # The web client classifies and exports whatever the browser decodes, WebP and GIF included.
    import io

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    rgb = Image.open(images[0]).convert("RGB")
    if fmt == "GIF":
        rgb = rgb.quantize(64).convert("RGB")  # a GIF holds at most 256 colours: compare those pixels
    data = io.BytesIO()
    rgb.save(data, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    picture = tmp_path / f"cell{suffix}"
    picture.write_bytes(data.getvalue())
    lab = tmp_path / "lab"
    review_export.write_export(lab / "a.zip", [review_export.cell(picture, "MONOCYTE")])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert not listing.refused and [c.label for c in listing.cells] == ["MONOCYTE"]
    candidates, _ = image_reader.lab_candidates("lab", listing, CLASSES, 0.3)
    encoded, height, width = image_reader.read_image(candidates[0].path, 10**7, candidates[0].member)
    decoded = tf.io.decode_image(encoded, channels=3).numpy()
    assert (height, width) == (240, 320) and np.array_equal(decoded, np.asarray(rgb))


def _patch_central_directory(path, member: str, *, method: int | None = None, encrypted: bool = False):
    """Rewrites one member's entry in the zip's central directory (what zipfile reads), as another zip
    tool would have written it: a compression method zipfile lacks, or the encrypted flag."""
    import struct
    import zipfile

    raw = bytearray(path.read_bytes())
    at = 0
    while True:
        at = raw.find(b"PK\x01\x02", at)
        assert at >= 0, member
        name_length = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + name_length].decode() == member:
            break
        at += 4
    if method is not None:
        struct.pack_into("<H", raw, at + 10, method)
    if encrypted:
        struct.pack_into("<H", raw, at + 8, struct.unpack_from("<H", raw, at + 8)[0] | 0x1)
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as archive:  # still a zip: only that member is unreadable
        assert member in archive.namelist()


@pytest.mark.parametrize("change", [{"encrypted": True}, {"method": 99}, {"method": 9}])
def test_an_encrypted_or_oddly_compressed_member_is_one_refused_line(tmp_path, images, change):
    # AES (99) or deflate64 (9), as some zip tools write; or a password: one line, the rest kept.
    lab = tmp_path / "lab"
    good, bad = review_export.cell(images[0], "NEUTROPHIL"), review_export.cell(images[1], "MONOCYTE")
    _patch_central_directory(review_export.write_export(lab / "1.zip", [good, bad]), bad["file"], **change)
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert [c.sha256 for c in listing.cells] == [good["sha256"]]
    assert _reasons(listing)[bad["file"]].startswith("cannot read it in the zip (")


def test_an_encrypted_manifest_is_one_refused_line(tmp_path, images):
    lab = tmp_path / "lab"
    _patch_central_directory(review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")]),
                             "manifest.json", encrypted=True)
    review_export.write_export(lab / "2.zip", [good := review_export.cell(images[1], "MONOCYTE")])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert _reasons(listing)["labs/lab/1.zip"].startswith("not a review export (manifest:")
    assert [c.sha256 for c in listing.cells] == [good["sha256"]]


def test_an_unreadable_file_is_one_refused_line(tmp_path, images, monkeypatch):
    import tensorflow as tf

    lab = tmp_path / "lab"
    review_export.write_export(lab / "locked.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    review_export.write_export(lab / "open.zip", [good := review_export.cell(images[1], "MONOCYTE")])
    (lab / "LYMPHOCYTE").mkdir()
    shutil.copy(images[2], lab / "LYMPHOCYTE" / "locked.jpeg")
    real = tf.io.gfile.GFile

    def gfile(path, mode="r"):
        if "locked" in os.path.basename(path):
            raise tf.errors.PermissionDeniedError(None, None, f"{path}; Permission denied")
        return real(path, mode)

    monkeypatch.setattr(lab_sources.gfile, "GFile", gfile)
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    reasons = _reasons(listing)
    assert reasons["labs/lab/locked.zip"].startswith("unreadable file (")
    assert reasons["labs/lab/LYMPHOCYTE/locked.jpeg"].startswith("unreadable file (")
    assert [c.sha256 for c in listing.cells] == [good["sha256"]]


def test_one_bad_manifest_entry_is_one_refused_line_and_the_export_is_kept(tmp_path, images):
    lab = tmp_path / "lab"
    goods = [review_export.cell(p, "NEUTROPHIL") for p in images[:3]]
    no_time = {k: v for k, v in review_export.cell(images[3], "MONOCYTE").items() if k != "reviewed_at"}
    upper = review_export.cell(images[4], "MONOCYTE")
    upper = {**upper, "sha256": upper["sha256"].upper()}
    vague = review_export.cell(images[5], "MONOCYTE", "soon")
    review_export.write_export(lab / "1.zip", [*goods, no_time, upper, vague])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert sorted(c.sha256 for c in listing.cells) == sorted(g["sha256"] for g in goods)
    reasons = _reasons(listing)
    assert reasons[no_time["file"]] == "manifest entry: 'reviewed_at' is a required property"
    assert reasons[upper["file"]].startswith("manifest entry: ")
    assert reasons[vague["file"]] == "manifest entry: reviewed_at 'soon' is not an ISO 8601 time with a zone"
    assert len(listing.refused) == 3  # the entries' files are not also "not listed in the manifest"


@pytest.mark.parametrize("earlier, later", [
    ("2026-12-01T10:00:00Z", "2026-12-01T10:00:00.500Z"),          # milliseconds sort after none
    ("2026-12-01T12:00:00+02:00", "2026-12-01T11:00:00Z"),         # 10:00 UTC is earlier
    ("0999-01-01T00:00:00Z", "2026-12-01T10:00:00Z"),              # a 3-digit year is not "later" text
])
def test_the_latest_review_is_the_latest_time_not_the_latest_text(tmp_path, images, earlier, later):
    lab = tmp_path / "lab"
    review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "EOSINOPHIL", later)])
    review_export.write_export(lab / "2.zip", [review_export.cell(images[0], "NEUTROPHIL", earlier)])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert [c.label for c in listing.cells] == ["EOSINOPHIL"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_outside_the_calendar_in_utc_is_one_refused_line(tmp_path, images, moment):
    lab = tmp_path / "lab"
    odd = review_export.cell(images[0], "NEUTROPHIL", moment)
    review_export.write_export(lab / "1.zip", [odd, good := review_export.cell(images[1], "MONOCYTE")])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert _reasons(listing)[odd["file"]].endswith("is not an ISO 8601 time with a zone")
    assert [c.sha256 for c in listing.cells] == [good["sha256"]]


def test_an_export_outside_a_lab_folder_is_one_refused_line(tmp_path, images):
    labs = tmp_path / "labs"
    review_export.write_export(labs / "mylab" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    review_export.write_export(labs / "bloodcell-review-mylab.zip", [review_export.cell(images[1], "NEUTROPHIL")])
    assert lab_sources.discover(str(labs)) == {"mylab": str(labs / "mylab")}
    assert [(r.rel_path, r.reason) for r in lab_sources.stray_files(str(labs))] == [
        ("labs/bloodcell-review-mylab.zip", "not in a lab folder (put it in labs/<lab name>/)")]


def test_a_lab_folder_and_a_named_source_of_one_name_is_an_error(tmp_path, images):
    from components.image_example_gen.executor import Executor

    labs, elsewhere = tmp_path / "labs", tmp_path / "elsewhere"
    review_export.write_export(labs / "mylab" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    review_export.write_export(elsewhere / "2.zip", [review_export.cell(images[1], "NEUTROPHIL")])
    executor = Executor()
    executor._params = {"labs_root": str(labs), "lab_sources": {"mylab": str(elsewhere)}}
    with pytest.raises(image_reader.IngestError, match="lab 'mylab' is both a folder of the labs folder"):
        executor._list_labs(CLASSES)
    executor._params = {"labs_root": str(labs), "lab_sources": {"mylab": str(labs / "mylab")}}
    assert set(executor._list_labs(CLASSES)) == {"mylab"}
    (tmp_path / "link").symlink_to(labs)  # the same folder by another path is the same lab
    executor._params = {"labs_root": str(labs), "lab_sources": {"mylab": str(tmp_path / "link" / "mylab")}}
    assert set(executor._list_labs(CLASSES)) == {"mylab"}


def test_a_zip_damaged_anywhere_in_its_directory_is_one_refused_line(tmp_path, images):
    # A truncated copy or a flipped bit in the central directory: zipfile raises many kinds of error
    # (version, seek, name decoding, end of file); each must be one line, the lab's other export kept.
    lab = tmp_path / "lab"
    intact = review_export.write_export(tmp_path / "intact.zip", [review_export.cell(images[0], "NEUTROPHIL"),
                                                                   review_export.cell(images[1], "MONOCYTE")])
    review_export.write_export(lab / "2.zip", [good := review_export.cell(images[2], "LYMPHOCYTE")])
    raw = intact.read_bytes()
    directory = raw.rfind(b"PK\x01\x02", 0, raw.rfind(b"PK\x01\x02"))  # the directory's last two entries
    damaged = lab / "1.zip"
    tried = 0
    for at in range(directory, len(raw)):
        for value in {0x00, 0xFF, 0x40, raw[at] ^ 0x80}:
            damaged.write_bytes(raw[:at] + bytes([value]) + raw[at + 1:])
            listing = lab_sources.list_lab("lab", str(lab), CLASSES)
            assert good["sha256"] in {c.sha256 for c in listing.cells}, (at, value)
            assert all("\n" not in r.reason for r in listing.refused)
            tried += 1
    for end in range(directory, len(raw), 7):  # cut short
        damaged.write_bytes(raw[:end])
        assert good["sha256"] in {c.sha256 for c in lab_sources.list_lab("lab", str(lab), CLASSES).cells}
    assert tried > 200


def test_an_export_made_for_another_lab_is_reported(tmp_path, images):
    """Its cells are taken as the folder's lab (the folder names the lab), but a mix-up of two labs'
    exports had gone unnoticed: one lab's stain would train and gate as another's."""
    lab = tmp_path / "onelab"
    review_export.write_export(lab / "ours.zip", [review_export.cell(images[0], "NEUTROPHIL")], lab="onelab")
    review_export.write_export(lab / "theirs.zip", [review_export.cell(images[1], "MONOCYTE")], lab="otherlab")
    listing = lab_sources.list_lab("onelab", str(lab), CLASSES)
    assert len(listing.cells) == 2
    assert listing.other_lab_exports == [{"file": "labs/onelab/theirs.zip", "lab": "otherlab"}]
    candidates, _ = image_reader.lab_candidates("onelab", listing, CLASSES, 0.3)
    summary = image_reader.lab_summary(listing, candidates, set())
    assert summary["exports_of_other_labs"] == listing.other_lab_exports


def test_an_unzipped_export_is_one_line_that_says_to_put_the_zip_there(tmp_path, images):
    """Safari unzips downloads: the export's folder copied into labs/<lab>/ was refused file by file as
    "unknown class folder", with no word that it was an export."""
    import zipfile

    lab = tmp_path / "lab"
    zipped = review_export.write_export(tmp_path / "export.zip", [review_export.cell(images[0], "NEUTROPHIL"),
                                                                  review_export.cell(images[1], "MONOCYTE")])
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(lab / "bloodcell-review-lab-2026")
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert not listing.cells
    assert [(r.rel_path, r.reason) for r in listing.refused] == [
        ("labs/lab/bloodcell-review-lab-2026", lab_sources.UNZIPPED_EXPORT)]
    assert "zip" in lab_sources.UNZIPPED_EXPORT


def test_an_export_unzipped_into_the_lab_folder_itself_is_refused_and_the_zips_label_stands(tmp_path, images):
    """Its class folders were read as plain ones, which count as reviewed before any export: the older
    zip's NEUTROPHIL beat this export's newer MONOCYTE, and nothing said so."""
    import zipfile

    lab = tmp_path / "mylab"
    review_export.write_export(lab / "old.zip", [review_export.cell(images[0], "NEUTROPHIL", "2026-12-01T10:00:00Z")])
    newer = review_export.write_export(tmp_path / "new.zip", [
        review_export.cell(images[0], "MONOCYTE", "2026-12-05T10:00:00Z"),
        review_export.cell(images[1], "LYMPHOCYTE", "2026-12-05T10:00:00Z")])
    with zipfile.ZipFile(newer) as archive:
        archive.extractall(lab)
    (lab / "EOSINOPHIL").mkdir()
    shutil.copy(images[2], lab / "EOSINOPHIL" / "mine.jpeg")  # the lab's own plain folder: still read
    listing = lab_sources.list_lab("mylab", str(lab), CLASSES)
    assert sorted(c.label for c in listing.cells) == ["EOSINOPHIL", "NEUTROPHIL"]
    assert [(r.rel_path, r.reason) for r in listing.refused] == [
        ("labs/mylab/manifest.json", f"{lab_sources.UNZIPPED_EXPORT} (3 files of it are not read)")]


@pytest.mark.parametrize("name", ["lost+found", "@eaDir", "#recycle", "$RECYCLE.BIN"])
def test_a_share_or_file_systems_own_folder_is_no_lab_and_no_class(tmp_path, images, name):
    """lost+found or a NAS's @eaDir in the labs folder had stopped every scheduled run (not a lab name),
    and inside a lab folder each file in it was a refused line."""
    from components.image_example_gen.executor import Executor

    labs = tmp_path / "labs"
    review_export.write_export(labs / "mylab" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    (labs / name).mkdir()
    (labs / "mylab" / name / "1.zip@SynoEAStream").mkdir(parents=True)
    (labs / "mylab" / name / "1.zip@SynoEAStream" / "x").write_bytes(b"x")
    executor = Executor()
    executor._params = {"labs_root": str(labs), "lab_sources": {}}
    assert set(executor._list_labs(CLASSES)) == {"mylab"} and not executor._stray_rejects
    listing = lab_sources.list_lab("mylab", str(labs / "mylab"), CLASSES)
    assert len(listing.cells) == 1 and not listing.refused
    # Not entered at all: what a NAS's indexer writes there does not change what the run reads.
    before = labs_fingerprint({"labs_root": str(labs)})
    (labs / "mylab" / name / "1.zip@SynoEAStream" / "x").write_bytes(b"xy")
    assert labs_fingerprint({"labs_root": str(labs)}) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists any folder")
def test_a_system_folder_that_cannot_be_listed_stops_nothing(tmp_path, images):
    """A share's lost+found is root's, mode 0700: walking into it raised PermissionDenied, and the
    scheduled run (not root) stopped before the ingest every week."""
    labs = tmp_path / "labs"
    review_export.write_export(labs / "mylab" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    for locked in (labs / "lost+found", labs / "mylab" / "lost+found"):
        locked.mkdir()
        locked.chmod(0)
    try:
        assert labs_fingerprint({"labs_root": str(labs)})
        assert len(lab_sources.list_lab("mylab", str(labs / "mylab"), CLASSES).cells) == 1
    finally:
        for locked in (labs / "lost+found", labs / "mylab" / "lost+found"):
            locked.chmod(0o700)


def test_class_folders_are_read_whatever_their_case(tmp_path, images):
    lab = tmp_path / "lab"
    for folder, image in (("neutrophil", images[0]), ("Monocyte", images[1]), ("unsure", images[2])):
        (lab / folder).mkdir(parents=True)
        shutil.copy(image, lab / folder / "x.jpeg")
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert sorted(c.label for c in listing.cells) == ["MONOCYTE", "NEUTROPHIL"]
    assert listing.not_trained == 1 and not listing.refused


@pytest.mark.parametrize("kept_in_memory", [True, False])
@pytest.mark.parametrize("replaced_by", ["junk", "another image under the same name"])
def test_an_export_replaced_after_it_was_listed_is_one_bad_image_not_a_failed_run(tmp_path, images, monkeypatch,
                                                                                  kept_in_memory, replaced_by):
    lab = tmp_path / "lab"
    export = review_export.write_export(lab / "1.zip", [first := review_export.cell(images[0], "NEUTROPHIL")])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    candidates, _ = image_reader.lab_candidates("lab", listing, CLASSES, 0.3)
    if replaced_by == "junk":
        export.write_bytes(b"not a zip any more")
    else:  # a sync tool rewriting the file: a good zip, the same member name, other bytes
        review_export.write_export(lab / "1.zip", [{**review_export.cell(images[1], "NEUTROPHIL"),
                                                     "file": first["file"]}])
    monkeypatch.setattr(lab_sources, "CACHED_ZIP_BYTES", 2**30 if kept_in_memory else 0)
    with pytest.raises(image_reader.BadImage, match="changed during the run"):
        image_reader.to_example(candidates[0], 10**7)


def test_a_dangling_link_in_a_lab_folder_is_one_refused_line_not_a_stopped_run(tmp_path, images):
    """The labs' fingerprint stat'ed every file and raised on a link to nothing: the run stopped
    ("cannot read the run's inputs") for one shortcut in a shared folder."""
    labs = tmp_path / "labs"
    review_export.write_export(labs / "mylab" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    before = labs_fingerprint({"labs_root": str(labs)})
    (labs / "mylab" / "NEUTROPHIL").mkdir()
    (labs / "mylab" / "NEUTROPHIL" / "shortcut.jpeg").symlink_to(tmp_path / "nowhere.jpeg")
    assert labs_fingerprint({"labs_root": str(labs)}) != before
    listing = lab_sources.list_lab("mylab", str(labs / "mylab"), CLASSES)
    assert len(listing.cells) == 1
    assert [r.rel_path for r in listing.refused] == ["labs/mylab/NEUTROPHIL/shortcut.jpeg"]
    assert listing.refused[0].reason.startswith("unreadable file")


def test_a_large_zip_in_a_lab_folder_is_not_read_into_memory(tmp_path, images):
    """Every zip was read whole before its manifest was looked for: a backup of gigabytes dropped in a
    lab's folder by mistake could take the run's memory. And each cell read its export whole again."""
    import tracemalloc
    import zipfile

    lab = tmp_path / "lab"
    lab.mkdir()
    with zipfile.ZipFile(lab / "backup.zip", "w") as archive:  # stored, not compressed: 40 MB on disk
        archive.writestr("disk.img", b"\0" * (40 * 2**20))
    review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    tracemalloc.start()
    try:
        listing = lab_sources.list_lab("lab", str(lab), CLASSES)
        image_reader.read_image(listing.cells[0].path, 10**7, listing.cells[0].member)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert _reasons(listing)["labs/lab/backup.zip"] == "not a review export (no manifest.json)"
    assert peak < 10 * 2**20, peak


def test_one_image_in_two_plain_class_folders_is_refused_not_decided_by_name(tmp_path, images):
    """With no review time, the folder later in the alphabet won (NEUTROPHIL over EOSINOPHIL), whichever
    the technologist put there last. An export's time still beats a plain folder."""
    lab = tmp_path / "lab"
    for folder, name in (("EOSINOPHIL", "a.jpeg"), ("NEUTROPHIL", "z.jpeg")):
        (lab / folder).mkdir(parents=True)
        shutil.copy(images[0], lab / folder / name)
    (lab / "MONOCYTE").mkdir()
    shutil.copy(images[1], lab / "MONOCYTE" / "m.jpeg")
    shutil.copy(images[1], lab / "MONOCYTE" / "m2.jpeg")  # the same image twice in one folder: one cell
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert [c.label for c in listing.cells] == ["MONOCYTE"]
    assert sorted(_reasons(listing).items()) == [
        ("labs/lab/EOSINOPHIL/a.jpeg", "the same image is in class folders EOSINOPHIL, NEUTROPHIL: keep it in one"),
        ("labs/lab/NEUTROPHIL/z.jpeg", "the same image is in class folders EOSINOPHIL, NEUTROPHIL: keep it in one")]
    review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "LYMPHOCYTE")])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert sorted(c.label for c in listing.cells) == ["LYMPHOCYTE", "MONOCYTE"] and not listing.refused


def test_a_review_from_a_clock_far_ahead_is_refused_not_the_latest_for_ever(tmp_path, images):
    """A workstation whose clock read next year: its verdicts were "latest" and beat every later
    correction from a computer with the right time, with no word of it."""
    import datetime

    lab = tmp_path / "lab"
    ahead = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=300)).isoformat()
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)).isoformat()
    review_export.write_export(lab / "wrong-clock.zip", [wrong := review_export.cell(images[0], "EOSINOPHIL", ahead)])
    review_export.write_export(lab / "right-clock.zip", [review_export.cell(images[0], "NEUTROPHIL"),
                                                         review_export.cell(images[1], "MONOCYTE", soon)])
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert sorted(c.label for c in listing.cells) == ["MONOCYTE", "NEUTROPHIL"]  # a zone set wrong is slack
    assert _reasons(listing)[wrong["file"]].endswith("is in the future: the reviewing computer's clock is wrong; "
                                                     "set it right, review the cell again, and remove this export")


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists any folder")
def test_a_lab_sub_folder_that_cannot_be_listed_is_one_refused_line_and_the_rest_is_read(tmp_path, images):
    # It had raised PermissionDenied out of the listing and the fingerprint: no lab and not the base ran.
    lab = tmp_path / "labs" / "mylab"
    review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    locked = lab / "NEUTROPHIL" / "private"
    locked.mkdir(parents=True)
    shutil.copy(images[1], lab / "NEUTROPHIL" / "x.jpeg")
    locked.chmod(0)
    try:
        listing = lab_sources.list_lab("mylab", str(lab), CLASSES)
        assert len(listing.cells) == 2
        assert [(r.rel_path, r.reason.split(" (")[0]) for r in listing.refused] == [
            ("labs/mylab/NEUTROPHIL/private", "a folder that cannot be read")]
        before = labs_fingerprint({"labs_root": str(tmp_path / "labs")})
        locked.chmod(0o700)
        assert labs_fingerprint({"labs_root": str(tmp_path / "labs")}) != before  # readable again: read again
    finally:
        locked.chmod(0o700)


def test_an_export_cut_short_says_so_and_that_older_reviews_stand(tmp_path, images):
    # A newer export cut short by an interrupted copy had read "not a zip file", and the older label of
    # its cells was trained on with nothing saying why.
    lab = tmp_path / "lab"
    review_export.write_export(lab / "1.zip", [review_export.cell(images[0], "NEUTROPHIL", "2026-12-01T10:00:00Z")])
    newer = review_export.write_export(lab / "2.zip", [review_export.cell(images[0], "LYMPHOCYTE",
                                                                          "2026-12-02T10:00:00Z")])
    newer.write_bytes(newer.read_bytes()[:len(newer.read_bytes()) // 2])
    (lab / "3.zip").write_bytes(b"<html>a login page saved as a zip</html>")
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert [c.label for c in listing.cells] == ["NEUTROPHIL"]
    reasons = {os.path.basename(r.rel_path): r.reason for r in listing.refused}
    assert reasons == {"2.zip": lab_sources.CUT_SHORT_ZIP, "3.zip": "not a review export (not a zip file)"}


def test_a_huge_file_in_a_lab_class_folder_is_refused_unread(tmp_path, images):
    lab = tmp_path / "lab"
    (lab / "NEUTROPHIL").mkdir(parents=True)
    shutil.copy(images[0], lab / "NEUTROPHIL" / "ok.jpeg")
    with open(lab / "NEUTROPHIL" / "huge.png", "wb") as f:
        f.truncate(lab_sources.MAX_MEMBER_BYTES + 1)  # sparse
    listing = lab_sources.list_lab("lab", str(lab), CLASSES)
    assert len(listing.cells) == 1
    assert _reasons(listing) == {"labs/lab/NEUTROPHIL/huge.png": f"image too large: over {lab_sources.MAX_MEMBER_BYTES} bytes"}


def test_threads_reading_three_exports_side_by_side_read_each_once(tmp_path, images, monkeypatch):
    """Beam runs bundles side by side in threads (Dataflow: 12 a worker), each reading one export's cells
    in a row. One cache of two exports for all threads swapped exports at nearly every cell, and read a
    whole export again each time."""
    import threading

    exports = [review_export.write_export(tmp_path / f"{i}.zip", [review_export.cell(image, "NEUTROPHIL")
                                                                  for image in images[:4]]) for i in range(3)]
    with zipfile.ZipFile(exports[0]) as archive:
        members = [name for name in archive.namelist() if not name.endswith(".json")]
    assert len(members) == 4
    opened = []
    real_gfile = lab_sources.gfile.GFile

    def counting_gfile(path, mode="r"):
        opened.append(os.path.basename(path))
        return real_gfile(path, mode)

    monkeypatch.setattr(lab_sources.gfile, "GFile", counting_gfile)
    turn = threading.Barrier(3)
    errors = []

    def read_cells(export):
        try:
            for member in members:
                turn.wait(timeout=30)  # every thread reads its n-th cell before any reads its next
                lab_sources.read_member(str(export), member)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=read_cells, args=(export,)) for export in exports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(opened) == ["0.zip", "1.zip", "2.zip"], opened


def test_the_export_held_for_its_cells_is_let_go_at_the_end_of_a_bundle(tmp_path, images):
    """Beam keeps finished threads for reuse: each went on holding its last export (up to 64 MiB) for the
    rest of the job, and the runner's lab check held one through the whole run."""
    from components.image_example_gen import executor

    export = review_export.write_export(tmp_path / "1.zip", [review_export.cell(images[0], "NEUTROPHIL")])
    listing = lab_sources.list_lab("lab", str(tmp_path), CLASSES)
    candidates, _ = image_reader.lab_candidates("lab", listing, CLASSES, 0.0)
    decode = executor._DecodeImage(10**7)
    assert [split for split, _ in decode.process(candidates[0])] == [candidates[0].split]
    assert lab_sources._held_export.data is not None  # held while the bundle's cells are read
    decode.finish_bundle()
    assert lab_sources._held_export.data is None and lab_sources._held_export.key is None
    assert os.path.exists(export)


def test_a_cell_reviewed_in_two_labs_counts_once_as_the_later_review_says(tmp_path, images):
    """Reviewed again with another label while the page named another lab, a cell was a candidate of
    both labs, trained with both labels (the page had said the new verdict replaces the old)."""
    from components.image_example_gen.executor import Executor

    labs = tmp_path / "labs"
    day = "2026-12-0{}T10:00:00Z".format
    review_export.write_export(labs / "a" / "1.zip", [review_export.cell(images[0], "NEUTROPHIL", day(1)),
                                                      review_export.cell(images[1], "MONOCYTE", day(1)),
                                                      review_export.cell(images[2], "EOSINOPHIL", day(1)),
                                                      review_export.cell(images[3], "EOSINOPHIL", day(1))], lab="a")
    review_export.write_export(labs / "b" / "1.zip", [review_export.cell(images[0], "LYMPHOCYTE", day(2)),
                                                      review_export.cell(images[1], "MONOCYTE", day(1)),
                                                      review_export.cell(images[2], "UNSURE", day(2)),
                                                      review_export.cell(images[3], "NEUTROPHIL", day(1))], lab="b")
    executor = Executor()
    executor._params = {"labs_root": str(labs), "lab_sources": {}}
    out = executor._list_labs(CLASSES)
    sha = [review_export.cell(image, "x")["sha256"] for image in images[:4]]
    cells = {name: sorted((c.sha256, c.label_name) for c in candidates) for name, (candidates, _) in out.items()}
    # Later in b: b's label; at one time with one label: a's cell; with two labels: neither; a later
    # "unsure" in b keeps a's eosinophil from training.
    assert cells == {"a": [(sha[1], "MONOCYTE")], "b": [(sha[0], "LYMPHOCYTE")]}, cells
    reasons = {name: sorted(r.reason for r in refused) for name, (_, refused) in out.items()}
    clash = "the same image is reviewed in labs a and b with other labels at the same time: keep it in one lab"
    assert reasons["a"] == sorted([clash, f"reviewed again later in lab b (LYMPHOCYTE, {day(2)[:-1]}.000000+00:00): that review counts",
                            f"reviewed again later in lab b (UNSURE, {day(2)[:-1]}.000000+00:00): that review counts"]), reasons
    assert reasons["b"] == sorted([clash, "the same image is a cell of lab a too (MONOCYTE): counted there"]), reasons
    assert [len(executor._lab_listings[n].refused) for n in ("a", "b")] == [3, 2]


def test_the_runners_lab_check_counts_a_cell_reviewed_in_two_labs_once(tmp_path, images):
    """The runner found lab a's cell and let the run start; the ingest gave it to lab b, and the run failed
    late, in the Trainer, instead of before any step."""
    from components.image_example_gen.stable_hash import hash_fraction
    from pipeline import run_inputs

    trained = next(i for i in images if hash_fraction(review_export.cell(i, "x")["sha256"]) >= 0.3)
    labs = tmp_path / "labs"
    review_export.write_export(labs / "a" / "1.zip", [review_export.cell(trained, "NEUTROPHIL", "2026-12-01T10:00:00Z")], lab="a")
    review_export.write_export(labs / "b" / "1.zip", [review_export.cell(trained, "LYMPHOCYTE", "2026-12-02T10:00:00Z")], lab="b")
    folders = {"a": str(labs / "a"), "b": str(labs / "b")}
    assert run_inputs.labs_with_cells(folders, ["a", "b"], CLASSES, 10**8, 0.3, []) == ["b"]


def test_a_split_export_with_a_zip_missing_is_reported(tmp_path, images):
    """The page splits a large lab's export into several zips, each read on its own: with one of them
    not copied into the lab's folder, its cells were silently not trained on, while the page counted
    them exported."""
    lab = tmp_path / "onelab"

    def part(name, image, at, number, parts):
        review_export.write_export(lab / name, [review_export.cell(image, "NEUTROPHIL")], lab="onelab",
                                   manifest_overrides={"exported_at": at, "part": number, "parts": parts})

    part("split-part1-of-3.zip", images[0], "2026-12-02T09:00:00.000Z", 1, 3)
    part("split-part3-of-3.zip", images[1], "2026-12-02T09:00:00.000Z", 3, 3)
    part("whole-part1-of-2.zip", images[2], "2026-12-03T09:00:00.000Z", 1, 2)
    part("whole-part2-of-2.zip", images[3], "2026-12-03T09:00:00.000Z", 2, 2)
    review_export.write_export(lab / "unnumbered.zip", [review_export.cell(images[4], "MONOCYTE")], lab="onelab")
    listing = lab_sources.list_lab("onelab", str(lab), CLASSES)
    assert len(listing.cells) == 5 and not listing.refused
    assert listing.incomplete_exports == [{"lab": "onelab", "exported_at": "2026-12-02T09:00:00.000Z", "parts": 3,
                                           "missing": [2]}]
    candidates, _ = image_reader.lab_candidates("onelab", listing, CLASSES, 0.3)
    assert image_reader.lab_summary(listing, candidates, set())["incomplete_exports"] == listing.incomplete_exports


def test_a_zip_numbered_past_its_export_is_refused(tmp_path, images):
    lab = tmp_path / "onelab"
    for name, numbering in [("past.zip", {"part": 4, "parts": 3}), ("zero.zip", {"part": 0, "parts": 1}),
                            ("text.zip", {"part": "1", "parts": 1})]:
        review_export.write_export(lab / name, [review_export.cell(images[0], "NEUTROPHIL")], lab="onelab",
                                   manifest_overrides=numbering)
    reasons = _reasons(lab_sources.list_lab("onelab", str(lab), CLASSES))
    assert reasons["labs/onelab/past.zip"] == "not a review export (manifest: part 4 of 3)"
    assert reasons["labs/onelab/zero.zip"].startswith("not a review export (manifest: 0 is less than the minimum")
    assert reasons["labs/onelab/text.zip"].startswith("not a review export (manifest: '1' is not of type 'integer'")
