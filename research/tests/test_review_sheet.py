"""research/review_sheet.py: which cross-validated cells go to the label review, and the sheet."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from research import review_sheet

REPORT_A = {"model seed 1": {"cell_shares": {"MONOCYTE/_0_1.jpeg": 0.0, "NEUTROPHIL/_0_2.jpeg": 0.4,
                                             "EOSINOPHIL/_0_3.jpeg": 1.0}},
            "model seed 2": {"cell_shares": {"MONOCYTE/_0_1.jpeg": 0.2, "NEUTROPHIL/_0_2.jpeg": 0.6,
                                             "EOSINOPHIL/_0_3.jpeg": 0.0}},
            "note": "not a run"}
# Another file whose folds held out only some of the cells.
REPORT_B = {"other seed 1": {"cell_shares": {"MONOCYTE/_0_1.jpeg": 0.1, "LYMPHOCYTE/_0_4.jpeg": 0.0}}}


def test_a_cell_is_listed_only_when_every_run_that_held_it_out_got_most_copies_wrong():
    cells = review_sheet.missed_cells([REPORT_A, REPORT_B], max_share=0.5)
    assert [c["cell"] for c in cells] == ["LYMPHOCYTE/_0_4.jpeg", "MONOCYTE/_0_1.jpeg"]
    monocyte = cells[1]
    assert monocyte["label"] == "MONOCYTE" and monocyte["runs"] == 3
    assert abs(monocyte["mean_share_right"] - 0.1) < 1e-9


def test_reports_without_runs_are_refused():
    with pytest.raises(ValueError, match="cell_shares"):
        review_sheet.missed_cells([{"note": "x"}], 0.5)


def write_frames(train, cells):
    for cell in cells:
        (train / cell).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (320, 240), (200, 120, 180)).save(train / cell)


def test_the_sheet_has_a_captioned_tile_per_cell(tmp_path, capsys):
    train = tmp_path / "TRAIN"
    write_frames(train, ["LYMPHOCYTE/_0_4.jpeg", "MONOCYTE/_0_1.jpeg"])
    cv = [tmp_path / "a.json", tmp_path / "b.json"]
    cv[0].write_text(json.dumps(REPORT_A))
    cv[1].write_text(json.dumps(REPORT_B))
    out = tmp_path / "sheet.png"
    assert review_sheet.main(["--train", str(train), "--cv", *map(str, cv), "--out", str(out)]) == 0
    sheet = Image.open(out).convert("RGB")
    width, height = review_sheet.TILE
    assert sheet.size == (review_sheet.COLUMNS * width, height + review_sheet.CAPTION_HEIGHT)
    tile = sheet.getpixel((width + 10, 10))                                 # the second tile's frame
    assert max(abs(a - b) for a, b in zip(tile, (200, 120, 180))) <= 3      # JPEG frames
    assert sheet.getpixel((2 * width + 10, 10)) == (255, 255, 255)        # no third cell
    caption = sheet.crop((0, height, width, height + review_sheet.CAPTION_HEIGHT))
    assert min(caption.convert("L").getdata()) < 100                        # text was drawn
    printed = capsys.readouterr().out
    assert "| MONOCYTE | `_0_1` | 3 | 0.10 |" in printed and "2 cells" in printed


def test_a_missing_image_stops_with_one_line_and_no_sheet(tmp_path, capsys):
    cv = tmp_path / "a.json"
    cv.write_text(json.dumps(REPORT_A))
    out = tmp_path / "sheet.jpg"
    assert review_sheet.main(["--train", str(tmp_path / "none"), "--cv", str(cv), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 1 cell images not under") and "\n" not in err
    assert not out.exists()
