"""Images derived from the dataset that imitate other microscopes: higher magnification (the cell
about three times larger in the frame) and other stain and background colours."""
from __future__ import annotations

import numpy as np
from PIL import Image


def cell_centre(pixels: np.ndarray) -> tuple[float, float]:
    """(row, column) of the white cell's nucleus in a float [h, w, 3] 0-255 frame, by the pipeline's own
    nucleus finder (its centre before the crop window is fitted inside the frame)."""
    import tensorflow as tf

    from models.transform.nucleus_crop import nucleus_centres

    cy, cx, _ = nucleus_centres(tf.constant(pixels[None] / 255.0, tf.float32))
    return float(cy[0]), float(cx[0])


def magnified(pixels: np.ndarray, factor: float = 3.0) -> np.ndarray:
    """What a `factor` times stronger objective shows with the white cell centred under it: the window
    of 1/factor of the frame around the cell's nucleus (kept inside the frame), scaled up to the frame
    size. The dataset's copies are shifted and rotated, so the frame's own centre often misses the cell."""
    h, w = pixels.shape[:2]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    cy, cx = cell_centre(pixels)
    top = int(round(min(max(cy - ch / 2, 0), h - ch)))
    left = int(round(min(max(cx - cw / 2, 0), w - cw)))
    crop = Image.fromarray(pixels[top:top + ch, left:left + cw].astype(np.uint8))
    return np.asarray(crop.resize((w, h), Image.BICUBIC), dtype=np.float32)


def recoloured(pixels: np.ndarray, hue_shift: float = 0.08, saturation: float = 0.7,
               brightness: float = 1.1) -> np.ndarray:
    """Another stain and illumination: hue rotated by `hue_shift` turns, saturation and value scaled."""
    hsv = np.asarray(Image.fromarray(pixels.astype(np.uint8)).convert("HSV"), dtype=np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue_shift * 255.0) % 256.0
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * brightness, 0, 255)
    return np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"), dtype=np.float32)


def recoloured_far(pixels: np.ndarray) -> np.ndarray:
    """A stain far outside the colours training varies over (hue +-0.1 turn): hue rotated by 0.3."""
    return recoloured(pixels, hue_shift=0.3, saturation=1.0, brightness=0.95)


def not_a_cell(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Unlike any training image: the frame's pixels shuffled in 16x16 blocks (same colours, no cell)."""
    rng = np.random.default_rng(seed)
    h, w = (pixels.shape[0] // 16) * 16, (pixels.shape[1] // 16) * 16
    blocks = pixels[:h, :w].reshape(h // 16, 16, w // 16, 16, 3).swapaxes(1, 2).reshape(-1, 16, 16, 3)
    blocks = blocks[rng.permutation(len(blocks))]
    out = pixels.copy()
    out[:h, :w] = blocks.reshape(h // 16, w // 16, 16, 16, 3).swapaxes(1, 2).reshape(h, w, 3)
    return out


VARIANTS = {"magnified_x3": magnified, "recoloured": recoloured, "recoloured_far": recoloured_far,
            "not_a_cell": not_a_cell}
