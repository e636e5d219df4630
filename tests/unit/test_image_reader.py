"""Folder reading: layouts, splits, and every bad-input case with its reason."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.image_example_gen import image_reader as reader
from testkit.bad_images import png_declaring
from testkit.images import CLASSES, encoded, make_dataset


def listing(root, val_fraction=0.25):
    return reader.list_source(str(root), CLASSES, val_fraction, 0.2, "hash")


def test_kaggle_layouts_are_resolved(tmp_path):
    make_dataset(tmp_path / "dataset2-master" / "images")
    expected = str(tmp_path / "dataset2-master" / "images")
    assert reader.resolve_data_root(str(tmp_path)) == expected
    assert reader.resolve_data_root(str(tmp_path / "dataset2-master")) == expected
    assert reader.resolve_data_root(expected) == expected
    with pytest.raises(reader.IngestError, match="data directory not found"):
        reader.resolve_data_root(str(tmp_path / "missing"))


def test_splits_train_val_from_train_eval_from_test(tmp_path):
    make_dataset(tmp_path)
    candidates, rejected = listing(tmp_path)
    assert rejected == []
    assert {c.split for c in candidates if c.rel_path.startswith("TEST/")} == {"eval"}
    assert {c.split for c in candidates if c.rel_path.startswith("TRAIN/")} == {"train", "val"}
    # Deterministic: the same files land in the same splits every time.
    assert [(c.rel_path, c.split) for c in candidates] == [(c.rel_path, c.split) for c in listing(tmp_path)[0]]
    assert {c.label_name: c.label for c in candidates} == {name: i for i, name in enumerate(CLASSES)}


def test_source_without_split_folders_is_hash_split(tmp_path):
    make_dataset(tmp_path, {"TEST": 12})
    flat = tmp_path / "flat"
    (tmp_path / "TEST").rename(flat)
    candidates, _ = reader.list_source(str(flat), CLASSES, 0.2, 0.2, "hash")
    assert {c.split for c in candidates} == {"train", "val", "eval"}


def test_unknown_class_folder_and_non_image_extension_are_rejected(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "TRAIN" / "BASOPHIL").mkdir()
    (tmp_path / "TRAIN" / "BASOPHIL" / "x.jpeg").write_bytes(b"whatever")
    (tmp_path / "TRAIN" / "MONOCYTE" / "notes.txt").write_text("hello")
    (tmp_path / "TRAIN" / "MONOCYTE" / ".DS_Store").write_text("ignored")
    _, rejected = listing(tmp_path)
    reasons = {r.rel_path: r.reason for r in rejected}
    assert reasons == {"TRAIN/BASOPHIL/x.jpeg": "unknown class folder 'BASOPHIL'",
                       "TRAIN/MONOCYTE/notes.txt": "not an image file extension"}


def test_empty_split_is_an_error(tmp_path):
    make_dataset(tmp_path, {"TRAIN": 4})
    with pytest.raises(reader.IngestError, match="has TRAIN/ but no TEST/ folder"):
        listing(tmp_path)
    for cls in CLASSES:
        (tmp_path / "TEST" / cls).mkdir(parents=True)
    with pytest.raises(reader.IngestError, match="split 'eval' has no images"):
        listing(tmp_path)


@pytest.mark.parametrize("content, reason", [
    (b"", r"empty file \(0 bytes\)"),
    (b"<html>not an image</html>", "not an image"),
])
def test_unreadable_files(tmp_path, content, reason):
    path = tmp_path / "bad.jpeg"
    path.write_bytes(content)
    with pytest.raises(reader.BadImage, match=reason):
        reader.read_image(str(path), 10**8)


def _png_with_a_damaged_header_length() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG")
    good = out.getvalue()
    return good[:8] + (5).to_bytes(4, "big") + good[12:]  # IHDR's length field: 5 instead of 13


def _dds_header_pillow_cannot_read() -> bytes:
    header = bytearray(124)
    header[0:4] = (124).to_bytes(4, "little")
    header[8:12] = (4).to_bytes(4, "little")   # height
    header[12:16] = (4).to_bytes(4, "little")  # width
    header[72:76] = (32).to_bytes(4, "little")   # pixel format size
    header[76:80] = (0x4).to_bytes(4, "little")  # DDPF_FOURCC
    header[80:84] = b"ZZZZ"                      # a compression Pillow does not know
    return b"DDS " + bytes(header) + bytes(64)


@pytest.mark.parametrize("content", [_png_with_a_damaged_header_length(), _dds_header_pillow_cannot_read()],
                         ids=["png-ihdr-length", "dds-unknown-fourcc"])
def test_a_header_pillow_raises_an_unexpected_error_on_is_one_reason(tmp_path, content):
    # Pillow raises ValueError / NotImplementedError for these, which had escaped the ingest and stopped
    # the whole run with no file named.
    path = tmp_path / "damaged.png"
    path.write_bytes(content)
    with pytest.raises(reader.BadImage, match=r"^(not an image|truncated or corrupt image data) \("):
        reader.read_image(str(path), 10**8)


def test_truncated_jpeg(tmp_path, real_jpeg):
    path = tmp_path / "truncated.jpeg"
    path.write_bytes(real_jpeg[: len(real_jpeg) // 2])
    with pytest.raises(reader.BadImage, match="truncated or corrupt image data"):
        reader.read_image(str(path), 10**8)


def test_image_over_pixel_limit(tmp_path, real_jpeg):
    path = tmp_path / "big.jpeg"
    path.write_bytes(real_jpeg)  # 320x240 = 76,800 pixels
    with pytest.raises(reader.BadImage, match="image too large: 320x240 pixels exceeds the limit of 50000"):
        reader.read_image(str(path), 50_000)
    assert reader.read_image(str(path), 76_800)[1:] == (240, 320)


def test_rgb_jpeg_bytes_are_kept_unchanged(tmp_path, real_jpeg):
    path = tmp_path / "cell.jpeg"
    path.write_bytes(real_jpeg)
    assert reader.read_image(str(path), 10**8)[0] == real_jpeg


@pytest.mark.parametrize("mode, fmt", [("L", "JPEG"), ("L", "PNG"), ("RGBA", "PNG"), ("RGB", "BMP"),
                                       ("P", "PNG"), ("RGB", "PNG")])
def test_other_modes_and_formats_become_rgb(tmp_path, mode, fmt):
    image = Image.new("RGB", (30, 20), (200, 40, 90)).convert(mode)
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(encoded(image, fmt))
    data, height, width = reader.read_image(str(path), 10**8)
    back = Image.open(io.BytesIO(data))
    assert (back.mode, back.size, (height, width)) == ("RGB", (30, 20), (20, 30))


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    path = tmp_path / "clear.png"
    path.write_bytes(encoded(image, "PNG"))
    data, _, _ = reader.read_image(str(path), 10**8)
    assert Image.open(io.BytesIO(data)).getpixel((0, 0)) == (255, 255, 255)


def test_a_bmps_fourth_channel_is_not_transparency_as_in_the_served_model(tmp_path):
    """A 32-bit BMP with an alpha mask (BITMAPV4 header): Pillow reads it as RGBA, TF Serving's decoder
    as RGB. The ingest had made its clear pixels white, so training and serving saw other pixels."""
    import struct

    from models.transform.preprocessing import decode_rgb

    pixels = b"".join(struct.pack("<BBBB", 140, 20, 60, 0 if (x + y) % 2 else 255) for y in range(8) for x in range(8))
    header = (struct.pack("<IiiHHIIiiII", 108, 8, 8, 1, 32, 3, len(pixels), 2835, 2835, 0, 0)
              + struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000) + b"\0" * 52)
    bmp = b"BM" + struct.pack("<IHHI", 14 + len(header) + len(pixels), 0, 0, 14 + len(header)) + header + pixels
    assert Image.open(io.BytesIO(bmp)).mode == "RGBA"
    path = tmp_path / "alpha.bmp"
    path.write_bytes(bmp)
    data, _, _ = reader.read_image(str(path), 10**8)
    trained = decode_rgb(tf.constant(data)).numpy()
    np.testing.assert_array_equal(trained, decode_rgb(tf.constant(bmp)).numpy())
    assert trained[0, 1].tolist() == [60, 20, 140]


def test_to_example_has_every_feature(tmp_path, real_jpeg):
    import tensorflow as tf

    path = tmp_path / "c.jpeg"
    path.write_bytes(real_jpeg)
    candidate = reader.Candidate(str(path), "TRAIN/MONOCYTE/c.jpeg", "train", "MONOCYTE", 2)
    example = tf.train.Example.FromString(reader.to_example(candidate, 10**8))
    f = example.features.feature
    assert f["image"].bytes_list.value[0] == real_jpeg
    assert f["label"].int64_list.value[0] == 2
    assert f["label_name"].bytes_list.value[0] == b"MONOCYTE"
    assert f["source_path"].bytes_list.value[0] == b"TRAIN/MONOCYTE/c.jpeg"
    assert (f["height"].int64_list.value[0], f["width"].int64_list.value[0]) == (240, 320)


def test_summary_counts_each_rejected_input_once():
    cands = [reader.Candidate(f"/d/{i}", f"TRAIN/A/{i}", "train", "A", 0) for i in range(8)]
    cands += [reader.Candidate("/d/e", "TEST/A/e", "eval", "A", 0)]
    rejected = [reader.Rejected("TRAIN/A/0", "train", "empty file (0 bytes)"),
                reader.Rejected("TRAIN/X/1", "train", "unknown class folder 'X'")]
    report = reader.summarize(cands, rejected, 0.1)
    assert (report["inputs"], report["examples"], report["rejected"]) == (10, 8, 2)
    assert report["rejected_fraction"] == 0.2
    assert report["splits"] == {"train": {"examples": 7, "per_class": {"A": 7}}, "val": {"examples": 0, "per_class": {}},
                                "eval": {"examples": 1, "per_class": {"A": 1}}}
    assert report["rejected_by_reason"] == {"empty file": 1, "unknown class folder 'X'": 1}


def test_unreadable_file_is_an_error_not_a_crash(tmp_path):
    with pytest.raises(tf.errors.NotFoundError):
        reader.read_image(str(tmp_path / "vanished.jpeg"), 10**8)


def test_a_decompression_bomb_is_rejected_in_one_line(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(20000, 20000))
    assert len(path.read_bytes()) < 100
    with pytest.raises(reader.BadImage, match=r"^image too large: its header declares over \d+ pixels$"):
        reader.read_image(str(path), max_pixels=25_000_000)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_greyscale_is_scaled_as_tensorflow_decodes_it(tmp_path, mode):
    values = np.array([[0, 257, 1000, 20000], [32768, 40000, 65280, 65535]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(values.astype(np.int32) if mode == "I" else values, mode).save(path)
    stored, _, _ = reader.read_image(str(path), max_pixels=1_000_000)
    ingested = tf.io.decode_image(stored, channels=3).numpy().astype(int)
    served = tf.io.decode_image(path.read_bytes(), channels=3).numpy().astype(int)  # what TF Serving sees
    assert served.max() == 255 and ingested.max() == 255
    assert np.abs(ingested - served).max() <= 1


def test_a_file_directly_inside_a_split_folder_is_reported(tmp_path, real_jpeg):
    make_dataset(tmp_path)
    (tmp_path / "TRAIN" / "cell.jpeg").write_bytes(real_jpeg)
    (tmp_path / "TEST" / "notes.txt").write_text("hello")
    (tmp_path / "TRAIN" / ".DS_Store").write_text("ignored")
    _, rejected = listing(tmp_path)
    assert {r.rel_path: r.reason for r in rejected} == {"TRAIN/cell.jpeg": "not in a class folder",
                                                       "TEST/notes.txt": "not in a class folder"}


def test_hidden_and_share_system_folders_inside_a_class_folder_are_not_inputs(tmp_path, real_jpeg):
    # A Synology share keeps a thumbnail of every image under @eaDir; Jupyter keeps checkpoint copies:
    # both had become examples, each cell again in train, val and eval.
    make_dataset(tmp_path)
    for extra in ("TRAIN/NEUTROPHIL/@eaDir/0.jpeg/SYNOPHOTO_THUMB_M.jpg",
                  "TEST/NEUTROPHIL/.ipynb_checkpoints/1-checkpoint.jpeg", "TRAIN/@eaDir/x.jpeg", "TEST/.cache/y.jpeg"):
        (tmp_path / extra).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / extra).write_bytes(real_jpeg)
    candidates, rejected = listing(tmp_path)
    assert rejected == []
    assert not [c.rel_path for c in candidates if "@eaDir" in c.rel_path or "/." in c.rel_path]


def test_a_file_larger_than_any_image_within_the_pixel_limit_is_refused_unread(tmp_path, real_jpeg, monkeypatch):
    # A multi-gigabyte file named .png had been read whole (several times: hashing, grouping, decoding).
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.write(real_jpeg)
        f.truncate(reader.max_file_bytes(10**6) + 10**6)  # sparse: no disk used
    read = []
    real_gfile = reader.gfile.GFile

    class CountingFile(real_gfile):
        def read(self, n=-1):
            data = super().read(n)
            read.append(len(data))
            return data

    monkeypatch.setattr(reader.gfile, "GFile", CountingFile)
    with pytest.raises(reader.BadImage, match=r"^file too large: over \d+ bytes"):
        reader.read_image(str(path), 10**6)
    assert reader.base_copies([reader.Candidate(str(path), "TRAIN/X/huge.png", "train", "X", 0)], {"x": ["l"]},
                              reader.max_file_bytes(10**6)) == {}
    assert read == [reader.max_file_bytes(10**6) + 1] * 2  # never the whole file
