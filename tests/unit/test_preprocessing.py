from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.transform.preprocessing import preprocessing_fn
from testkit.bad_images import png_declaring
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


@pytest.mark.parametrize("fmt, mode, options", [
    ("JPEG", "RGB", {}), ("PNG", "RGB", {}), ("BMP", "RGB", {}), ("GIF", "RGB", {}),
    ("WEBP", "RGB", {}), ("WEBP", "RGB", {"lossless": True}), ("WEBP", "RGBA", {}),  # VP8, VP8L, VP8X
])
def test_declared_pixels_read_from_the_header(fmt, mode, options):
    from models.transform.preprocessing import declared_pixels

    for size in ((37, 21), (6000, 5000)):
        data = encoded(Image.new(mode, size, (200, 100, 50)), fmt, **options)
        assert int(declared_pixels(tf.constant(data))) == size[0] * size[1], size


def test_a_webp_over_the_pixel_limit_fails_before_decoding():
    """A lossless WebP of one colour: 30 million pixels in about a kilobyte. Its header had not been
    read, so it was decoded (over a gigabyte) instead of refused."""
    from models.transform.preprocessing import decode_and_resize

    data = encoded(Image.new("RGB", (6000, 5000), (200, 100, 50)), "WEBP", lossless=True)
    assert len(data) < 10_000
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        decode_and_resize(tf.constant(data), 80, max_pixels=25_000_000)


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGBA"), ("PNG", "LA"), ("PNG", "P"), ("WEBP", "RGBA")])
def test_transparency_reaches_the_model_as_the_ingest_makes_it(tmp_path, fmt, mode):
    from components.image_example_gen import image_reader
    from models.transform.preprocessing import decode_rgb
    from testkit.images import sample_jpegs, with_clear_parts

    image = with_clear_parts(sample_jpegs("TEST", "MONOCYTE")[0])
    options = {"lossless": True} if fmt == "WEBP" else {}
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":  # a palette with one transparent colour
        image = image.convert("RGB").quantize(64)
        image.info["transparency"] = image.getpixel((0, 0))
        options = {"transparency": image.getpixel((0, 0))}
    path = tmp_path / f"clear.{fmt.lower()}"
    path.write_bytes(encoded(image, fmt, **options))
    ingested, _, _ = image_reader.read_image(str(path), 10**8)
    # In a graph, as Transform and TF Serving run it: the channel count must be known there.
    in_graph = tf.function(decode_rgb, input_signature=[tf.TensorSpec([], tf.string)])
    assert in_graph.get_concrete_function().structured_outputs.shape.as_list() == [None, None, 3]
    served = in_graph(tf.constant(path.read_bytes())).numpy().astype(int)
    trained = decode_rgb(tf.constant(ingested)).numpy().astype(int)
    assert served.shape == trained.shape
    assert np.abs(served - trained).max() <= 1
    assert (trained[-40:] == 255).all()  # the clear frame


def test_a_header_over_the_pixel_limit_fails_before_decoding():
    """A 30000 x 30000 PNG of a few dozen bytes: refused from its header (TF Serving: INVALID_ARGUMENT)."""
    from models.transform.preprocessing import decode_and_resize

    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large: more than 25000000 pixels"):
        decode_and_resize(tf.constant(png_declaring(30000, 30000)), 80, max_pixels=25_000_000)
    small = encoded(Image.new("RGB", (320, 240), (200, 100, 50)), "BMP")
    assert decode_and_resize(tf.constant(small), 80, max_pixels=320 * 240).shape == (80, 80, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        decode_and_resize(tf.constant(small), 80, max_pixels=320 * 240 - 1)


@pytest.mark.parametrize("data", [b"", b"GIF8", b"\x89PNG\r\n\x1a\n", b"RIFF", b"BM", b"\xff\xd8"])
def test_a_file_shorter_than_its_header_is_refused_as_not_an_image(data):
    """An empty or cut-short upload failed in the header read ("pos 8 out of range for string"), which TF
    Serving sent back to the client instead of saying the file is not an image it can decode."""
    from models.transform.preprocessing import decode_rgb

    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
        decode_rgb(tf.constant(data), 25_000_000)
    message = refused.value.message
    assert "out of range" not in message and "Incompatible shapes" not in message, message


def test_a_batch_is_decoded_one_image_at_a_time():
    """TF Serving runs this on a batch of up to 32 encoded images, each decoded at full size in float32:
    decoded side by side (map_fn's default, 10 at once), a few camera-sized frames exceeded a serving
    pod's memory (benchmarks/serving_memory.py)."""
    graph = tf.function(lambda images: preprocessing_fn({"image": images}, {"image_size": 32})["image_xf"]) \
        .get_concrete_function(tf.TensorSpec([None, 1], tf.string)).graph
    loops = [op for op in graph.get_operations() if op.type in ("While", "StatelessWhile")]
    assert loops and all(op.get_attr("parallel_iterations") == 1 for op in loops)
