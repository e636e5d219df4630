"""Cells from other labs (another microscope, camera and stain): where they are, and how a model does on them.

A source is a class-folder tree, `<DIR>/<CLASS>/<image>`. Cells of a class the model does not know
(Tecom's basophil) are kept apart: no accuracy can count them, but their answer and flag are reported,
since a cell the model was never taught should be flagged, not confidently named.
"""
from __future__ import annotations

import argparse
import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from benchmarks.quality import metrics

# At least what a lab's ingest reads (components/image_example_gen/lab_sources.py, a test keeps them in
# step; imported there with TensorFlow), so no cell a lab trains on is skipped here; TIFF as well.
IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff"}
# Under this many cells of a class, its recall is printed but means little.
FEW_CELLS = 10
# A folder name this close to a class's (difflib's ratio) and of nearly its length is that class
# misspelt or in the plural, not another cell type: NEUTROPHLI, Eosinofil, MONOCYTES are 0.84-0.95;
# BASOPHIL, MYELOCYTE, MONOBLAST 0.59-0.71; PROMONOCYTE, SEG_NEUTROPHIL are close but 3-4 letters longer.
MISSPELT = 0.8
MISSPELT_LENGTH = 2

Predict = Callable[[list[Path]], "tuple[np.ndarray, np.ndarray]"]  # files -> (probabilities, atypicality)


@dataclass(frozen=True)
class LabCells:
    name: str
    folder: Path
    files: list[Path]          # cells of the model's classes
    labels: np.ndarray         # their class indices
    outside: list[Path]        # cells of other classes (folder name = their class)
    # (left out, kept): a file with the same bytes as one before it is one cell, counted once
    copies: list[tuple[Path, Path]] = field(default_factory=list)


def parse_other_lab(text: str) -> tuple[str, Path]:
    """argparse type of --other-lab NAME=DIR."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    if not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{folder} is not a folder")
    return name, Path(folder)


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def discover(root: Path) -> dict[str, Path]:
    """Every sub-folder of root that holds class folders with images, by name. A missing root is empty."""
    if not root.is_dir():
        return {}
    return {d.name: d for d in sorted(root.iterdir())
            if d.is_dir() and any(c.is_dir() and _images(c) for c in d.iterdir())}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources(given: list[tuple[str, Path]], root: Path | None = None) -> tuple[dict[str, Path], dict[str, Path | None]]:
    """The sources to measure, name -> folder: each --other-lab NAME=DIR and, with root, every source found
    under it; and name -> the root it was found under (None: given), for error messages. ValueError in one
    line for a name given twice, or given for another folder than the source of that name under root
    (else one would silently replace the other)."""
    found = discover(root) if root is not None else {}
    folders, found_under = dict(found), {name: root for name in found}
    for name, folder in given:
        if name in found_under and found_under[name] is None:
            raise ValueError(f"--other-lab {name} is given twice: name each lab once")
        if name in found and found[name].resolve() != folder.resolve():
            raise ValueError(f"--other-lab {name}={folder}: --other-labs-root {root} holds a source of that name "
                             f"({found[name]}): give it another name")
        folders[name], found_under[name] = folder, None
    return folders, found_under


def load_error(err: Exception, found_under: Path | None) -> str:
    """A source's load() error, saying where the source came from."""
    if found_under is None:
        return f"--other-lab {err}"
    return f"{err} (a source found under --other-labs-root {found_under})"


def _check_decodes(name: str, image: Path, folder: Path) -> None:
    """Decoded now, not after hours of training, where the harness meets it."""
    try:
        with Image.open(image) as opened:
            opened.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{name}: {image.relative_to(folder)} is not a readable image ({err})") from None


def load(name: str, folder: Path, class_names: list[str], keep_copies: bool = False) -> LabCells:
    """The images under folder/<CLASS>/ (class folder names compared case-insensitively). An image whose
    bytes equal an earlier one's (in file order) is the same cell: left out and listed in `copies`, or
    kept with keep_copies (benchmarks/lab_adaptation.py draws over every file, as its stored draws did).
    The same image under two classes is a ValueError."""
    files, labels, outside, copies = [], [], [], []
    upper = [c.upper() for c in class_names]
    first: dict[str, tuple[Path, str]] = {}  # sha256 -> the first file with it, and its class folder
    for class_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
        label = upper.index(class_dir.name.upper()) if class_dir.name.upper() in upper else None
        # A misspelt class would otherwise be read as a class the model does not know (as BASOPHIL is),
        # and its cells would leave accuracy and recall unnoticed.
        meant = [c for c in difflib.get_close_matches(class_dir.name.upper(), upper, n=1, cutoff=MISSPELT)
                 if abs(len(c) - len(class_dir.name)) <= MISSPELT_LENGTH]
        if label is None and meant:
            raise ValueError(f"{name}: class folder {class_dir.name} is not a class: rename it "
                             f"{class_names[upper.index(meant[0])]}")
        for image in _images(class_dir):
            digest = sha256_of(image)
            if digest not in first:
                _check_decodes(name, image, folder)
            kept, kept_class = first.setdefault(digest, (image, class_dir.name.upper()))
            if kept != image:
                if kept_class != class_dir.name.upper():
                    raise ValueError(f"{name}: {image.relative_to(folder)} and {kept.relative_to(folder)} are the "
                                     "same image under two classes: keep it under one")
                if not keep_copies:
                    copies.append((image, kept))
                    continue
            if label is None:
                outside.append(image)
            else:
                files.append(image)
                labels.append(label)
    if not files:
        raise ValueError(f"{name}: no images under {folder}/<{'|'.join(class_names)}>/")
    return LabCells(name, folder, files, np.array(labels), outside, copies)


def measure(predict: Predict, cells: LabCells, class_names: list[str], threshold: float) -> dict:
    """The harness's summary (accuracy, recall, confusion, ECE, flags) on the lab's cells, plus what the
    model answered for each cell outside its classes."""
    probabilities, atypicality = predict(cells.files)
    summary = metrics.summarize(probabilities, cells.labels, class_names, threshold, atypicality)
    summary["class_counts"] = {n: int((cells.labels == i).sum()) for i, n in enumerate(class_names)}
    summary["copies"] = [[str(c.relative_to(cells.folder)), str(k.relative_to(cells.folder))] for c, k in cells.copies]
    summary["outside"] = []
    if cells.outside:
        probs, atyp = predict(cells.outside)
        flags = metrics.review_flags(probs, threshold, atyp)
        for path, p, flagged in zip(cells.outside, probs, flags):
            top = int(p.argmax())
            summary["outside"].append({
                "file": str(path.relative_to(cells.folder)), "answer": class_names[top],
                "probability": float(p[top]), "probabilities": [round(float(v), 4) for v in p],
                "flagged": bool(flagged)})
    return summary


def measure_all(predict: Predict, sources: dict[str, Path], class_names: list[str], threshold: float) -> dict:
    return {name: {"folder": str(folder), **measure(predict, load(name, folder, class_names), class_names, threshold)}
            for name, folder in sources.items()}


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(rows: list[tuple[str, str, str, dict]], class_names: list[str]) -> list[str]:
    """Markdown rows (source, model, seed, measure() result), then the confusion matrices and the cells
    outside the model's classes."""
    short = [n[:3] for n in class_names]
    header = ("| source | model | seed | cells | accuracy | " + " | ".join(f"recall {s}" for s in short)
              + " | ECE | flagged | errors flagged | right answers flagged | accuracy unflagged |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for source, model, seed, r in rows:
        def shown(key: str, value: float | None) -> str:  # a mean over fewer seeds than the row's says so
            over = (r.get("over") or {}).get(key)
            return share(value) + (f" ({over} of {r['of']})" if over else "")

        recalls = " | ".join(shown(f"recall {n}", r["per_class"][n]["recall"]) for n in class_names)
        lines.append(f"| {source} | {model} | {seed} | {r['n']} | {r['accuracy']:.4f} | {recalls} | {share(r['ece'])} | "
                     f"{r['review_flag_rate']:.3f} | {shown('errors_flagged', r.get('errors_flagged'))} | "
                     f"{shown('right_flagged', r.get('right_flagged'))} | "
                     f"{shown('accuracy_unflagged', r.get('accuracy_unflagged'))} |")
    counts = rows[0][3].get("class_counts") if rows else None
    if counts:
        few = [n for n, c in counts.items() if c < FEW_CELLS]
        lines += ["", "Cells per class: " + ", ".join(f"{n} {c}" for n, c in counts.items())
                  + (f" (under {FEW_CELLS} cells: {', '.join(few)}'s recall means little)" if few else "") + "."]
    copies = rows[0][3].get("copies") if rows else None
    if copies:
        lines += ["", "Counted once (the same bytes as an earlier file, so the same cell): "
                  + "; ".join(f"{copy} (= {kept})" for copy, kept in copies) + "."]
    lines += ["", "Confusion (rows: the lab's label; columns: the model's answer, " + " ".join(short) + "):", ""]
    for source, model, seed, r in rows:
        matrix = "; ".join(f"{s} {' '.join(str(v) for v in row)}" for s, row in zip(short, r["confusion_matrix"]))
        lines.append(f"- {source} {model} seed {seed}: {matrix}")
    outside = [(source, model, seed, o) for source, model, seed, r in rows for o in r.get("outside", [])]
    if outside:
        lines += ["", "Cells of a class the model does not know:", ""]
        lines += [f"- {source} {o['file']}: {model} seed {seed} answered {o['answer']} ({o['probability']:.2f}), "
                  f"{'flagged' if o['flagged'] else 'NOT flagged'}" for source, model, seed, o in outside]
    return lines


def mean_row(results: list[dict], class_names: list[str]) -> dict:
    """The mean over seeds of the figures table() prints (confusion summed). A figure some seeds have none
    of (no errors: no share of them flagged) is the mean over the others; `over` says how many, of `of`."""
    over = {}

    def mean(key, values):
        values = [v for v in values if v is not None]
        if 0 < len(values) < len(results):
            over[key] = len(values)
        return float(np.mean(values)) if values else None

    return {
        "n": results[0]["n"], "class_counts": results[0].get("class_counts"), "copies": results[0].get("copies"),
        "accuracy": mean("accuracy", [r["accuracy"] for r in results]),
        "ece": mean("ece", [r["ece"] for r in results]),
        "per_class": {n: {"recall": mean(f"recall {n}", [r["per_class"][n]["recall"] for r in results])}
                      for n in class_names},
        "review_flag_rate": mean("review_flag_rate", [r["review_flag_rate"] for r in results]),
        **{key: mean(key, [r.get(key) for r in results])
           for key in ("errors_flagged", "right_flagged", "accuracy_unflagged")},
        "confusion_matrix": np.sum([r["confusion_matrix"] for r in results], axis=0).tolist(),
        "over": over, "of": len(results),
    }
