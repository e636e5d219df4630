"""Stain normalisation of the whole frame, referenced to two anchors of the frame itself.

Labs stain and light their slides differently. Absorbance (optical density, -log of the transmitted
light) is what stains add. In density, a change of stain is modelled as what hue, saturation and
brightness do: a turn of the colours about the grey axis, and a scaling of their colourfulness and of
their greyness. Two anchors fix those three numbers and the offset: the background (lightest 5 % of
the slide) and the nucleus (its stain-weighted mean, found as nucleus_crop.py finds it). Neither
depends much on how much of the frame the white cell fills, so a magnified view of a cell gets about
the same map (a frame-wide anchor such as the median does not). The cytoplasm and granules, which
tell the classes apart, are not anchors: they follow the map. ADJUSTED names which of the three
numbers the map fits; the others stay 1.

The black fill of the dataset's rotated copies is left out. Only plain TensorFlow ops (top_k, one_hot,
reductions, cross products written out) are used, so the browser model runs the same function.
"""
from __future__ import annotations

import tensorflow as tf

from models.transform.nucleus_crop import POOL, nucleus_weight

DARK = 0.1               # a block whose mean channel value is below this is fill, not slide
BACKGROUND_SHARE = 0.05  # the background anchor: this share of the slide's blocks is lighter
MIN_CHROMA = 0.02        # a nucleus this close to grey gives no hue to turn: the frame is left as it is
MAX_SCALE = 3.0          # colourfulness and greyness are scaled by at most this, or its inverse
# The anchors' means over 240 TRAIN frames (60 a class, random.seed(0)):
# `infra/env/run.sh python -m research.stain_reference --train ../shared/data/blood-cells/images/TRAIN`
REFERENCE_BACKGROUND = (0.1584, 0.1558, 0.1561)
REFERENCE_NUCLEUS = (0.5911, 0.8529, 0.1499)
ANCHORS = ("background", "nucleus")
GREY = 3.0 ** -0.5       # each component of the unit grey axis in density
ADJUSTABLE = ("turn", "colourfulness", "greyness")
ADJUSTED = ADJUSTABLE    # what the map fits besides the background offset


def density(images: tf.Tensor) -> tf.Tensor:
    """Transmitted light in [0, 1] -> optical density, 0 (white) to about 5.5 (black)."""
    return -tf.math.log(tf.clip_by_value(images, 1.0 / 255.0, 1.0))


def frame_anchors(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """float32 [b, h, w, 3] in [0, 1] -> the background and nucleus densities [b, 3], and whether the
    frame has slide and a nucleus [b]."""
    blocks = tf.nn.avg_pool2d(images, POOL, POOL, "VALID")
    batch = tf.shape(blocks)[0]
    flat = tf.reshape(blocks, [batch, -1, 3])
    slide = tf.reduce_mean(flat, axis=2) > DARK                                  # [b, n]
    od = density(flat)
    n = tf.shape(od)[1]
    # Only the lightest share is ever read: a partial sort, not of every block (large browser images).
    k = tf.cast(tf.floor(BACKGROUND_SHARE * tf.cast(n - 1, tf.float32)), tf.int32) + 1
    lightest = -tf.math.top_k(-tf.transpose(tf.where(slide[..., None], od, 1e3), [0, 2, 1]), k=k).values
    count = tf.reduce_sum(tf.cast(slide, tf.float32), axis=1)                    # [b]
    index = tf.cast(tf.floor(BACKGROUND_SHARE * tf.maximum(count - 1.0, 0.0)), tf.int32)
    background = tf.reduce_sum(lightest * tf.one_hot(index, k)[:, None, :], axis=2)
    weight, _ = nucleus_weight(flat[..., 2] - flat[..., 1])                      # [b, n]; 0 on the fill
    total = tf.reduce_sum(weight, axis=1)
    nucleus = tf.reduce_sum(od * weight[..., None], axis=1) / tf.maximum(total, 1e-12)[:, None]
    return background, nucleus, (count > 0.0) & (total > 0.0)


def _cross(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """[..., 3] x [..., 3] -> [..., 3]. Written out: TensorFlow.js has no Cross op."""
    a0, a1, a2 = tf.unstack(a, axis=-1)
    b0, b1, b2 = tf.unstack(b, axis=-1)
    return tf.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _grey_and_chroma(od: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """[..., 3] -> (length along the grey axis [..., 1], the rest [..., 3])."""
    grey = tf.reduce_sum(od, axis=-1, keepdims=True) * GREY
    return grey, od - grey * GREY


def check_adjusted(adjusted: tuple[str, ...]) -> None:
    """Refuses, in one line, an adjustment the map does not know."""
    unknown = set(adjusted) - set(ADJUSTABLE)
    if unknown:
        raise ValueError(f"stain map: unknown adjustment(s) {sorted(unknown)}; choose from {ADJUSTABLE}")


def fit_stain_map(images: tf.Tensor, adjusted: tuple[str, ...] = ADJUSTED) -> dict[str, tf.Tensor]:
    """float32 [b, h, w, 3] in [0, 1] -> each frame's map to the reference: its background density
    [b, 3], the turn's cosine and sine, the colourfulness and greyness factors [b, 1] (1 unless named
    in `adjusted`), and whether to map the frame at all [b]: not without slide or nucleus, nor when
    the nucleus is too grey to give a hue."""
    check_adjusted(adjusted)
    background, nucleus, usable = frame_anchors(images)
    grey, chroma = _grey_and_chroma(nucleus - background)                        # [b, 1], [b, 3]
    ref_background = tf.constant(REFERENCE_BACKGROUND, tf.float32)[None]
    ref_grey, ref_chroma = _grey_and_chroma(tf.constant(REFERENCE_NUCLEUS, tf.float32)[None] - ref_background)
    size = tf.norm(chroma, axis=-1, keepdims=True)
    ref_size = tf.norm(ref_chroma, axis=-1, keepdims=True)
    fitted = {"background": background, "cos": tf.ones_like(size), "sin": tf.zeros_like(size),
              "colourfulness": tf.ones_like(size), "greyness": tf.ones_like(grey),
              "keep": usable & (size[:, 0] >= MIN_CHROMA)}
    if "turn" in adjusted:  # about the grey axis, from the nucleus's hue to the reference's
        unit, ref_unit = chroma / tf.maximum(size, 1e-6), ref_chroma / ref_size
        fitted["cos"] = tf.reduce_sum(unit * ref_unit, axis=-1, keepdims=True)
        fitted["sin"] = tf.reduce_sum(_cross(unit, ref_unit), axis=-1, keepdims=True) * GREY
    if "colourfulness" in adjusted:
        fitted["colourfulness"] = tf.clip_by_value(ref_size / tf.maximum(size, 1e-6), 1.0 / MAX_SCALE, MAX_SCALE)
    if "greyness" in adjusted:
        fitted["greyness"] = tf.clip_by_value(ref_grey / tf.maximum(grey, 1e-6), 1.0 / MAX_SCALE, MAX_SCALE)
    return fitted


def apply_stain_map(fitted: dict[str, tf.Tensor], images: tf.Tensor) -> tf.Tensor:
    """fit_stain_map's map applied to float32 [b, h, w, 3] in [0, 1] (the frames it was fitted on, or
    other views of them)."""
    shape = tf.shape(images)
    od = tf.reshape(density(images), [shape[0], -1, 3]) - fitted["background"][:, None, :]
    pixel_grey, pixel_chroma = _grey_and_chroma(od)
    axis = tf.constant([GREY, GREY, GREY], tf.float32)
    across = _cross(axis[None, None], pixel_chroma)                            # chroma turned a quarter
    turned = pixel_chroma * fitted["cos"][:, None] + across * fitted["sin"][:, None]
    mapped = (tf.constant(REFERENCE_BACKGROUND, tf.float32)[None, None]
              + pixel_grey * fitted["greyness"][:, None] * axis + turned * fitted["colourfulness"][:, None])
    normalised = tf.clip_by_value(tf.reshape(tf.exp(-tf.nn.relu(mapped)), shape), 0.0, 1.0)
    return tf.where(fitted["keep"][:, None, None, None], normalised, images)


def normalise_stain(images: tf.Tensor, adjusted: tuple[str, ...] = ADJUSTED) -> tf.Tensor:
    """float32 [b, h, w, 3] in [0, 1] -> the same frames as if stained and lit like the reference.
    A frame without slide or nucleus, or with a grey nucleus, is returned unchanged."""
    return apply_stain_map(fit_stain_map(images, adjusted), images)
