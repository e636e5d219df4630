from __future__ import annotations

import numpy as np
import tensorflow as tf
from PIL import Image

from models.transform.preprocessing import preprocessing_fn
from testkit.images import encoded


def test_jpeg_bytes_become_scaled_rgb_at_configured_size(real_jpeg):
    out = preprocessing_fn({"image": tf.constant([[real_jpeg], [real_jpeg]]), "label": tf.constant([[1], [3]])},
                           {"image_size": 64})
    images = out["image_xf"].numpy()
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.01
    assert out["label"].numpy().tolist() == [[1], [3]]


def test_grayscale_png_becomes_three_channels_and_label_is_optional():
    gray = encoded(Image.new("L", (50, 40), 128), "PNG")
    out = preprocessing_fn({"image": tf.constant([[gray]])}, {"image_size": 32})
    assert set(out) == {"image_xf"}
    image = out["image_xf"].numpy()[0]
    assert image.shape == (32, 32, 3)
    np.testing.assert_allclose(image, 128 / 255, atol=1e-3)


def test_jpeg_pixels_match_what_browsers_and_pil_decode():
    """Training, TF Serving and the browser model must see the same pixels: the accurate IDCT."""
    from models.transform.preprocessing import decode_rgb
    from testkit.images import sample_jpegs

    for path in sample_jpegs("TEST", "MONOCYTE")[:4]:
        data = path.read_bytes()
        ours = decode_rgb(tf.constant(data)).numpy()
        np.testing.assert_array_equal(ours, np.asarray(Image.open(path).convert("RGB")))
        # TensorFlow's default IDCT is what this guards against: it does differ.
        assert (tf.io.decode_jpeg(data, channels=3).numpy() != ours).any()


def test_png_and_bmp_still_decode():
    from models.transform.preprocessing import decode_rgb

    image = Image.new("RGB", (7, 5), (10, 200, 30))
    for fmt in ("PNG", "BMP"):
        np.testing.assert_array_equal(decode_rgb(tf.constant(encoded(image, fmt))).numpy(), np.asarray(image))
