"""Every TRAIN image's crop with the cell group it belongs to -> one compact file for cross-validation
by cell on the GPU machine (`screen.py --folds`).

`val` holds 29 cells, 3 of them monocytes, so it cannot rank variants on monocytes at all. Folds made
of whole cell groups use all of TRAIN's cells instead, each held out once. TEST is never read.

    infra/env/run.sh python -m research.gpu_screen.export_cells --train ../shared/data/blood-cells/images/TRAIN \
        --out .gpu/cells/train_cells.npz   # .gpu/ is listed in .git/info/exclude

Crops are made as the Transform makes them (`preprocessing.decode_rgb`, then `resize_decoded_pixels`,
one image at a time, at the configuration's image_size and stain_normalisation); groups as the ingest
makes them (`cell_groups.group_files`, per class). Crops are stored as export_crops.py stores them
(JPEG quality 95, no chroma subsampling).

`--stain-arms` compares stain normalisation (models/transform/stain.py, as it is when exported)
with none in one GPU call: `all_*` are then the plain crops and `norm_*` the normalised ones of the
same images; `--adjusted` picks the map's adjustments (stain.ADJUSTABLE). `--recoloured-every n` adds
every n-th image recoloured as the harness recolours a frame (benchmarks/quality/derived.py, before the
crop and the normalisation): `rec_*` (and `normrec_*`), at `rec_index`. `--magnified-every n` adds the
harness's 3x magnified frames the same way: `mag_*` (and `normmag_*`), at `mag_index`. Both arms and the
derived copies of all of TRAIN exceed the device's 64 MiB carry: `--every 2` keeps every other copy
of a cell.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tensorflow as tf


from research.gpu_screen.export_crops import encode_crop, jpeg_arrays
from benchmarks.quality.derived import magnified, recoloured
from components.image_example_gen.cell_groups import group_files
from models.transform import stain
from models.transform.preprocessing import decode_rgb, resize_decoded_pixels
from pipeline.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", help="pipeline configuration (default: pipeline/config.yaml)")
    parser.add_argument("--stain-arms", action="store_true", help="also the stain-normalised crops (norm_*)")
    parser.add_argument("--every", type=int, default=1, help="keep every n-th copy of each cell")
    parser.add_argument("--adjusted", default=",".join(stain.ADJUSTED),
                        help="comma-separated adjustments of the stain map (stain.ADJUSTABLE)")
    parser.add_argument("--recoloured-every", type=int, default=0, help="recolour every n-th kept image (0: none)")
    parser.add_argument("--magnified-every", type=int, default=0, help="magnify every n-th kept image (0: none)")
    args = parser.parse_args()
    config = load_config(args.config)
    adjusted = tuple(a for a in args.adjusted.split(",") if a)
    try:  # a bad --adjusted fails before the long export
        stain.check_adjusted(adjusted)
    except ValueError as error:
        raise SystemExit(f"error: --adjusted: {error}") from None
    arms = {"all": False, "norm": True} if args.stain_arms else {"all": config.stain_normalisation}
    views = {view: (fn, every) for view, fn, every in (("rec", recoloured, args.recoloured_every),
                                                      ("mag", magnified, args.magnified_every)) if every}
    encoded = {arm: [] for arm in arms}
    derived = {(view, arm): [] for view in views for arm in arms}
    index = {view: [] for view in views}
    labels, group_of, keys, names = [], [], [], []

    def crops(pixels: np.ndarray) -> dict[str, bytes]:
        frame = tf.constant(pixels[None], tf.float32)
        return {arm: encode_crop(resize_decoded_pixels(frame, config.image_size, norm, adjusted)[0].numpy())
                for arm, norm in arms.items()}

    for label, class_name in enumerate(config.class_names):
        class_dir = Path(args.train) / class_name
        if not class_dir.is_dir():
            raise SystemExit(f"error: no folder {class_dir}")
        files = sorted(str(p) for p in class_dir.iterdir() if p.is_file())
        data = {p: Path(p).read_bytes() for p in files}
        for group in group_files(files, data.__getitem__):
            members = list(group.members)[::args.every]
            for m in members:
                pixels = decode_rgb(tf.constant(data[m])).numpy().astype(np.float32)
                for arm, crop in crops(pixels).items():
                    encoded[arm].append(crop)
                for view, (derive, every) in views.items():
                    if len(labels) % every == 0:
                        index[view].append(len(labels))
                        for arm, crop in crops(derive(pixels)).items():
                            derived[view, arm].append(crop)
                labels.append(label)
            group_of.extend([len(keys)] * len(members))
            names.extend(Path(m).name for m in members)
            keys.append(f"{class_name}/{Path(group.key).name}")
        print(f"{class_name}: {len(files)} images, groups so far {len(keys)}", flush=True)
    arrays = {}
    for arm in arms:
        arrays.update(jpeg_arrays(arm, encoded[arm]))
        for view in views:  # the screen reads `rec_*` beside `all_*`, `normrec_*` beside `norm_*`
            arrays.update(jpeg_arrays(view if arm == "all" else arm + view, derived[view, arm]))
    for view in views:
        arrays[f"{view}_index"] = np.asarray(index[view])
    np.savez(args.out, **arrays, all_y=np.asarray(labels), all_group=np.asarray(group_of),
             group_key=np.asarray(keys), file_name=np.asarray(names), class_names=np.asarray(config.class_names))
    size = sum(a.nbytes for k, a in arrays.items() if k.endswith("_jpeg")) / 1e6
    derived_counts = ", ".join(f"{len(index[v])} {v}" for v in views) or "no derived views"
    print(f"{len(labels)} images, {derived_counts}, arms {list(arms)}, map {adjusted}, {len(keys)} groups, "
          f"{size:.1f} MB -> {args.out}")


if __name__ == "__main__":
    main()
