"""Every TRAIN image's crop with the cell group it belongs to -> one compact file for cross-validation
by cell on the GPU machine (`screen.py --folds`).

`val` holds 29 cells, 3 of them monocytes, so it cannot rank variants on monocytes at all. Folds made
of whole cell groups use all of TRAIN's cells instead, each held out once. TEST is never read.

    infra/env/run.sh python benchmarks/gpu_screen/export_cells.py --train ../shared/data/blood-cells/images/TRAIN \
        --out .gpu/cells/train_cells.npz   # .gpu/ is listed in .git/info/exclude

Crops are made as the Transform makes them (`preprocessing.decode_and_resize`, one image at a time,
at the configuration's image_size); groups as the ingest makes them (`cell_groups.group_files`, per
class). Crops are stored as export_crops.py stores them (JPEG quality 95, no chroma subsampling).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from benchmarks.gpu_screen.export_crops import encode_crop  # noqa: E402
from components.image_example_gen.cell_groups import group_files  # noqa: E402
from components.transform.preprocessing import decode_and_resize  # noqa: E402
from pipeline.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the TRAIN folder: <CLASS>/<image>")
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", help="pipeline configuration (default: pipeline/config.yaml)")
    args = parser.parse_args()
    config = load_config(args.config)
    encoded, labels, group_of, keys, names = [], [], [], [], []
    for label, class_name in enumerate(config.class_names):
        class_dir = Path(args.train) / class_name
        if not class_dir.is_dir():
            raise SystemExit(f"error: no folder {class_dir}")
        files = sorted(str(p) for p in class_dir.iterdir() if p.is_file())
        data = {p: Path(p).read_bytes() for p in files}
        for group in group_files(files, data.__getitem__):
            members = list(group.members)
            encoded.extend(encode_crop(decode_and_resize(tf.constant(data[m]), config.image_size).numpy())
                           for m in members)
            labels.extend([label] * len(members))
            group_of.extend([len(keys)] * len(members))
            names.extend(Path(m).name for m in members)
            keys.append(f"{class_name}/{Path(group.key).name}")
        print(f"{class_name}: {len(files)} images, groups so far {len(keys)}", flush=True)
    np.savez(args.out, all_jpeg=np.frombuffer(b"".join(encoded), np.uint8),
             all_len=np.asarray([len(e) for e in encoded]), all_y=np.asarray(labels),
             all_group=np.asarray(group_of), group_key=np.asarray(keys), file_name=np.asarray(names),
             class_names=np.asarray(config.class_names))
    print(f"{len(labels)} crops, {len(keys)} groups, {sum(len(e) for e in encoded) / 1e6:.1f} MB -> {args.out}")


if __name__ == "__main__":
    main()
