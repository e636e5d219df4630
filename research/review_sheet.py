"""A contact sheet of the TRAIN cells that no model got right in the cross-validation by cell, for a
hematologist to review their labels. Reads the GPU screen's `cv_report.py` JSONs and the TRAIN
images; TEST is never read.

    infra/env/run.sh python -m research.review_sheet --train ../shared/data/blood-cells/images/TRAIN \
        --cv research/results/gpu_cv_h100.json research/results/gpu_cv_stain_h100.json \
        --out research/results/cv_missed_cells.jpg

A cell is listed when every run that held it out got most of its copies wrong (share right under
--max-share, 0.5 by default). Each tile is the cell's first TRAIN image (the group's name in the
JSONs) with its dataset label and the mean share of its copies right. The same list is printed as a
Markdown table. Errors every model shares are a bias of the data or of the labels, which more tuning
cannot remove; a relabelled cell changes the training data, not the model code.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

TILE = (240, 180)     # half of a TRAIN frame (320x240): granules and nucleus stay visible
CAPTION_HEIGHT = 30
COLUMNS = 4


def missed_cells(reports: list[dict], max_share: float) -> list[dict]:
    """Cells whose share of copies right is under max_share in every run that held them out."""
    shares: dict[str, list[float]] = {}
    for report in reports:
        for run in report.values():
            if isinstance(run, dict) and "cell_shares" in run:
                for cell, share in run["cell_shares"].items():
                    shares.setdefault(cell, []).append(float(share))
    if not shares:
        raise ValueError("no run with cell_shares in the given reports (cv_report.py's output?)")
    missed = [{"cell": cell, "label": cell.split("/")[0], "runs": len(s), "mean_share_right": sum(s) / len(s)}
              for cell, s in shares.items() if max(s) < max_share]
    return sorted(missed, key=lambda m: (m["label"], m["cell"]))


def contact_sheet(train: Path, cells: list[dict]) -> Image.Image:
    """The cells' first images, COLUMNS to a row, each captioned with its label and share right."""
    rows = max(1, -(-len(cells) // COLUMNS))
    width, height = TILE[0], TILE[1] + CAPTION_HEIGHT
    sheet = Image.new("RGB", (COLUMNS * width, rows * height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, cell in enumerate(cells):
        x, y = (i % COLUMNS) * width, (i // COLUMNS) * height
        with Image.open(train / cell["cell"]) as frame:
            sheet.paste(frame.convert("RGB").resize(TILE, Image.Resampling.LANCZOS), (x, y))
        name = Path(cell["cell"]).stem
        draw.text((x + 4, y + TILE[1] + 2), f"{cell['label']} {name}", fill="black")
        draw.text((x + 4, y + TILE[1] + 15),
                  f"copies right: {cell['mean_share_right']:.0%} ({cell['runs']} runs)", fill="black")
    return sheet


def markdown(cells: list[dict]) -> str:
    lines = ["| label | cell (first TRAIN image) | runs | mean share of copies right |", "|---|---|---|---|"]
    lines += [f"| {c['label']} | `{Path(c['cell']).stem}` | {c['runs']} | {c['mean_share_right']:.2f} |"
              for c in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, required=True, help="the TRAIN folder (<CLASS>/<file>)")
    parser.add_argument("--cv", type=Path, nargs="+", required=True, help="cv_report.py JSONs")
    parser.add_argument("--out", type=Path, required=True, help="the sheet (.jpg or .png)")
    parser.add_argument("--max-share", type=float, default=0.5,
                        help="list a cell when its share of copies right is under this in every run")
    args = parser.parse_args(argv)
    try:
        reports = [json.loads(path.read_text()) for path in args.cv]
        cells = missed_cells(reports, args.max_share)
        missing = [c["cell"] for c in cells if not (args.train / c["cell"]).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} cell images not under {args.train}, e.g. {missing[0]}")
        sheet = contact_sheet(args.train, cells)
    except (OSError, ValueError) as e:    # json.JSONDecodeError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85)
    print(markdown(cells))
    print(f"{len(cells)} cells -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
