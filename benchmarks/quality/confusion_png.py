"""A confusion matrix as a small PNG (PIL only): rows actual, columns predicted, shaded by row share."""
from __future__ import annotations

from PIL import Image, ImageDraw

CELL, LABEL = 70, 110


def draw(matrix: list[list[int]], class_names: list[str], title: str, path: str) -> None:
    n = len(class_names)
    img = Image.new("RGB", (LABEL + n * CELL + 10, LABEL + n * CELL + 30), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 5), title, fill="black")
    d.text((LABEL, LABEL - 40), "predicted ->", fill="black")
    for j, name in enumerate(class_names):
        d.text((LABEL + j * CELL + 4, LABEL - 20), name[:9], fill="black")
    for i, name in enumerate(class_names):
        y = LABEL + i * CELL
        d.text((10, y + CELL // 2 - 6), name[:12], fill="black")
        total = sum(matrix[i]) or 1
        for j, count in enumerate(matrix[i]):
            share = count / total
            shade = int(255 * (1 - share))
            x = LABEL + j * CELL
            d.rectangle([x, y, x + CELL - 2, y + CELL - 2], fill=(shade, shade, 255), outline="grey")
            d.text((x + 8, y + CELL // 2 - 6), f"{count}", fill="black" if share < 0.5 else "white")
    img.save(path)
