"""Cell groups (components/image_example_gen/cell_groups.py): copies of one original cell stay
together, and the validation split takes whole groups."""
from __future__ import annotations

import collections

import numpy as np
import pytest
from PIL import Image

from components.image_example_gen import cell_groups
from components.image_example_gen import image_reader as reader
from testkit.images import CLASSES, encoded, make_dataset

TINTS = [(200, 120, 150), (170, 160, 210), (230, 200, 190), (190, 190, 150), (150, 200, 200)]


def _original(tint, seed) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth shading like a blood film, not pixel noise (which interpolation would average away).
    coarse = np.clip(rng.normal(tint, 10, (6, 8, 3)), 0, 255).astype(np.uint8)
    frame = np.array(Image.fromarray(coarse).resize((80, 60), Image.BILINEAR))
    frame[20:40, 30:50] = (90, 40, 140)                           # a purple "nucleus"
    return Image.fromarray(frame)


def _copies(original: Image.Image, tint) -> list[Image.Image]:
    out = []
    for angle in (0, 7, -12, 18):
        for flip in (False, True):
            # The dataset's copies fill uncovered corners from the nearest edge: background colour.
            copy = original.rotate(angle, resample=Image.BILINEAR, fillcolor=tint)
            out.append(copy.transpose(Image.FLIP_LEFT_RIGHT) if flip else copy)
    return out


def test_augmented_copies_of_one_original_share_a_group():
    images, truth = [], []
    for i, tint in enumerate(TINTS[:3]):
        copies = _copies(_original(tint, i), tint)
        images += copies
        truth += [i] * len(copies)
    ids = cell_groups.group_ids(np.stack([cell_groups.colour_signature(im) for im in images]))
    truth = np.array(truth)
    for i in range(3):  # each original's copies share one group, and no group mixes originals
        assert len(set(ids[truth == i])) == 1
    assert len(set(ids)) == 3


def _augmented_dataset(root, with_test=True):
    """root/TRAIN/<CLASS>/ holds 8 copies of each of 5 originals per class; TEST a few images."""
    origin = {}
    for c, cls in enumerate(CLASSES):
        for o, tint in enumerate(TINTS):
            for k, copy in enumerate(_copies(_original(tint, 10 * c + o), tint)):
                path = root / "TRAIN" / cls / f"_{o}_{k}.jpeg"
                path.parent.mkdir(parents=True, exist_ok=True)
                copy.save(path, quality=95)
                origin[f"TRAIN/{cls}/{path.name}"] = (cls, o)
        if with_test:
            (root / "TEST" / cls).mkdir(parents=True)
            _original(TINTS[0], 99).save(root / "TEST" / cls / "t.jpeg")
    return origin


def test_val_split_takes_whole_cells_from_every_class(tmp_path):
    origin = _augmented_dataset(tmp_path)
    candidates, rejected = reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "cell_groups")
    assert rejected == []
    sides = collections.defaultdict(set)
    for c in candidates:
        if c.rel_path.startswith("TRAIN/"):
            sides[origin[c.rel_path]].add(c.split)
    assert all(len(s) == 1 for s in sides.values())             # no original on both sides
    for cls in CLASSES:
        val_cells = [o for (k, o), s in sides.items() if k == cls and s == {"val"}]
        assert 1 <= len(val_cells) <= 2                           # ~25 % of 5 originals, train keeps the rest
    assert {c.split for c in candidates if c.rel_path.startswith("TEST/")} == {"eval"}
    # The same split on every run; the hash split of the same files differs (copies on both sides).
    again, _ = reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "cell_groups")
    assert [c.split for c in again] == [c.split for c in candidates]
    hashed, _ = reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "hash")
    hash_sides = collections.defaultdict(set)
    for c in hashed:
        if c.rel_path.startswith("TRAIN/"):
            hash_sides[origin[c.rel_path]].add(c.split)
    assert any(len(s) == 2 for s in hash_sides.values())


def test_source_without_split_folders_groups_eval_too(tmp_path):
    origin = _augmented_dataset(tmp_path / "x", with_test=False)
    flat = tmp_path / "x" / "TRAIN"
    candidates, _ = reader.list_source(str(flat), CLASSES, 0.2, 0.2, "cell_groups")
    sides = collections.defaultdict(set)
    for c in candidates:
        sides[origin["TRAIN/" + c.rel_path]].add(c.split)
    assert all(len(s) == 1 for s in sides.values())
    assert {c.split for c in candidates} == {"train", "val", "eval"}


def test_undecodable_file_is_kept_for_the_decode_step_to_report(tmp_path):
    _augmented_dataset(tmp_path)
    (tmp_path / "TRAIN" / "MONOCYTE" / "broken.jpeg").write_bytes(b"not an image")
    (tmp_path / "TRAIN" / "MONOCYTE" / "png.jpeg").write_bytes(
        encoded(_original(TINTS[1], 5), "PNG"))  # decodable whatever its extension says
    candidates, _ = reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "cell_groups")
    names = {c.rel_path: c.split for c in candidates}
    assert names["TRAIN/MONOCYTE/broken.jpeg"] in ("train", "val")
    assert names["TRAIN/MONOCYTE/png.jpeg"] in ("train", "val")
    assert len(candidates) == 4 * 40 + 2 + 4


def test_limits_give_one_line_errors(tmp_path, monkeypatch):
    _augmented_dataset(tmp_path)
    monkeypatch.setattr(cell_groups, "MAX_IMAGES_PER_CLASS", 10)
    with pytest.raises(reader.IngestError, match="set ingest.val_split=hash"):
        reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "cell_groups")
    with pytest.raises(reader.IngestError, match="unknown val_split"):
        reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "random")


def test_val_keeps_at_least_one_group_for_training():
    groups = [cell_groups.GroupedFiles(k, (k,)) for k in "ab"]
    assert len(cell_groups.choose_val_groups(groups, 0.99, lambda k: 0.0)) == 1


def test_grouping_decodes_no_image_over_the_pixel_limit(tmp_path, monkeypatch):
    """The split reads every TRAIN image before the ingest's size check: one over max_pixels must not
    be decoded there (its header is enough), and the ingest then rejects it with its reason."""
    make_dataset(tmp_path)
    big = tmp_path / "TRAIN" / "MONOCYTE" / "big.png"
    big.write_bytes(encoded(Image.new("RGB", (2000, 1500), (200, 150, 200)), "PNG"))
    decoded = []
    real = cell_groups.colour_signature
    monkeypatch.setattr(cell_groups, "colour_signature", lambda image: decoded.append(image.size) or real(image))
    candidates, _ = reader.list_source(str(tmp_path), CLASSES, 0.25, 0.2, "cell_groups", max_pixels=1_000_000)
    assert decoded and (2000, 1500) not in decoded
    assert "TRAIN/MONOCYTE/big.png" in {c.rel_path for c in candidates}  # listed; the decode step rejects it
    with pytest.raises(reader.BadImage, match="image too large"):
        reader.read_image(str(big), max_pixels=1_000_000)
