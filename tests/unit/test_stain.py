"""Stain normalisation: a frame already stained like the reference stays as it is; another stain of the
same frame (its hue turned, its colourfulness and greyness scaled, its lamp brighter) is mapped back;
the rotated copies' black fill is ignored; frames without a nucleus are left alone; and TensorFlow.js
computes the same crops as TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.transform import stain
from models.transform.preprocessing import resize_decoded_pixels


def transmitted(od) -> np.ndarray:
    return np.exp(-np.asarray(od, np.float32))


def slide(background, typical, nucleus, h=120, w=160, fill=0) -> np.ndarray:
    """A frame from three densities: background on the left quarter, red cells elsewhere, a round nucleus
    in the middle; `fill` rows of black at the top, as the dataset's rotated copies have."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = transmitted(typical)
    img[:, : w // 4] = transmitted(background)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 <= 16 ** 2] = transmitted(nucleus)
    img[:fill] = 0.0
    return img


RED_CELLS = (0.2425, 0.2867, 0.2623)   # the frames' median density over 240 TRAIN frames (stain_reference.py
                                       # at 09b0291, when the median was an anchor): red cells and plasma
REFERENCE = (stain.REFERENCE_BACKGROUND, RED_CELLS, stain.REFERENCE_NUCLEUS)
GREY = np.full(3, 3.0 ** -0.5, np.float32)


def restained(od, turn=0.8, colourfulness=0.6, greyness=1.3, lamp=0.8) -> np.ndarray:
    """Another stain and lamp, as density: colours turned about the grey axis by `turn` radians, their
    colourfulness and greyness scaled, the background lighter by `lamp`."""
    background = np.asarray(stain.REFERENCE_BACKGROUND, np.float32)
    x = np.asarray(od, np.float32) - background
    grey = x @ GREY
    chroma = x - grey * GREY
    chroma = chroma * np.cos(turn) + np.cross(GREY, chroma) * np.sin(turn)
    return background * lamp + grey * greyness * GREY + chroma * colourfulness


def normalise(*frames) -> np.ndarray:
    return stain.normalise_stain(tf.constant(np.stack(frames))).numpy()


def assert_same_picture(actual, expected):
    """Equal but for the nucleus's rim, where 4x4 blocks blend it with the red cells it sits on and pull
    the nucleus anchor, and so the whole map, by a little (measured: mean 0.002 on the frame, 0.003 on a
    crop of it, at most 0.01; the frames differ by 0.019-0.06 before the map)."""
    difference = np.abs(np.asarray(actual) - np.asarray(expected))
    assert difference.mean() < 4e-3 and difference.max() < 0.02, (difference.mean(), difference.max())


def test_a_frame_stained_like_the_reference_is_kept():
    frame = slide(*REFERENCE)
    assert_same_picture(normalise(frame)[0], frame)


def test_another_stain_of_the_same_frame_is_mapped_back():
    original, other = slide(*REFERENCE), slide(*[restained(a) for a in REFERENCE])
    assert np.abs(other - original).mean() > 0.015
    assert_same_picture(normalise(other)[0], original)


def test_black_fill_of_rotated_copies_does_not_move_the_anchors():
    plain, filled = normalise(slide(*REFERENCE), slide(*REFERENCE, fill=24))
    np.testing.assert_allclose(filled[24:], plain[24:], atol=1e-6)


def test_frames_without_nucleus_or_slide_are_left_unchanged():
    no_nucleus = slide(stain.REFERENCE_BACKGROUND, RED_CELLS, RED_CELLS)
    black = np.zeros_like(no_nucleus)
    out = normalise(no_nucleus, black)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[0], no_nucleus)
    np.testing.assert_array_equal(out[1], black)


def test_a_map_fitting_fewer_adjustments_undoes_only_those():
    original = slide(*REFERENCE)
    turned = slide(*[restained(a, colourfulness=1.0, greyness=1.0) for a in REFERENCE])
    fuller = slide(*[restained(a) for a in REFERENCE])
    assert_same_picture(stain.normalise_stain(tf.constant(turned[None]), ("turn",)).numpy()[0], original)
    # The colourfulness and greyness it does not fit stay: the full restaining is not undone.
    left = stain.normalise_stain(tf.constant(fuller[None]), ("turn",)).numpy()[0]
    assert np.abs(left - original).mean() > 0.01


def test_a_map_fitted_on_one_frame_applies_to_another_view_of_it():
    other = slide(*[restained(a) for a in REFERENCE])
    fitted = stain.fit_stain_map(tf.constant(other[None]))
    # More slide, lighter than any of it: its own anchors would differ (a lighter background), the fitted map not.
    wider = np.concatenate([other, np.full_like(other[:, :40], 0.97)], axis=1)
    assert not np.allclose(normalise(wider)[0, :, :160], normalise(other)[0], atol=1e-3)
    np.testing.assert_allclose(stain.apply_stain_map(fitted, tf.constant(wider[None])).numpy()[0, :, :160],
                               normalise(other)[0], atol=1e-6)


def test_an_unknown_adjustment_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown adjustment.*'hue'"):
        stain.fit_stain_map(tf.constant(slide(*REFERENCE)[None]), ("turn", "hue"))


def test_the_crop_is_taken_after_normalisation_only_when_asked():
    frame = slide(*[np.asarray(a, np.float32) * 1.3 for a in REFERENCE]) * 255.0
    plain = resize_decoded_pixels(tf.constant(frame[None]), 32).numpy()
    normalised = resize_decoded_pixels(tf.constant(frame[None]), 32, stain_normalisation=True).numpy()
    reference = resize_decoded_pixels(tf.constant(slide(*REFERENCE)[None] * 255.0), 32).numpy()
    assert np.abs(plain - reference).mean() > 0.02
    assert_same_picture(normalised, reference)


def test_tensorflow_js_normalises_and_crops_as_tensorflow_does(tmp_path):
    from testkit import browser as bh
    from components.tfjs_publisher import convert
    from models.features import BROWSER_INPUT, BROWSER_SIGNATURE

    class Crops(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=BROWSER_INPUT)])
        def serve(self, pixels):
            crops = resize_decoded_pixels(pixels, 24, stain_normalisation=True)
            # Under the output names the web client reads, so its own predict() runs the graph.
            flat = tf.reshape(crops, [tf.shape(crops)[0], -1])
            return {"probabilities": flat, "atypicality": tf.reduce_mean(flat, axis=1)}

    module = Crops()
    saved = str(tmp_path / "saved")
    tf.saved_model.save(module, saved, signatures={BROWSER_SIGNATURE: module.serve})
    convert.convert(saved, str(tmp_path / "tfjs"), "none")
    frames = sorted((bh.REPO / "data" / "sample" / "TRAIN").glob("*/*"))[::10]
    pixels = bh.decoded_pixels(frames)
    expected = bh.saved_model_outputs(saved, pixels)
    in_node = bh.node_probabilities(str(tmp_path / "tfjs"), bh.write_pixels(pixels, tmp_path / "px.f32"), "cpu")
    assert in_node.shape == expected.shape
    assert np.abs(in_node - expected).max() < 2e-3
