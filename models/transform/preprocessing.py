"""Transform's preprocessing_fn: encoded image bytes -> the white cell, cropped around its stained
nucleus and sized by it (nucleus_crop.py), as RGB floats in [0, 1].

The same graph is embedded in the exported model, so the served model takes raw encoded images; the
browser signature runs the same crop on decoded pixels.
"""
from __future__ import annotations

import tensorflow as tf

from models.features import IMAGE_KEY, LABEL_KEY, SOURCE_KEY, TRANSFORMED_IMAGE_KEY
from models.transform.nucleus_crop import nucleus_boxes, nucleus_crop
from models.transform.stain import ADJUSTED, normalise_stain


_HEADER_BYTES = 32  # the furthest header field read below ends at byte 30


def _header_uint(encoded: tf.Tensor, offset: int, size: int, big_endian: bool) -> tf.Tensor:
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, offset, size), tf.uint8), tf.int64)
    weights = tf.constant([256 ** i for i in (reversed(range(size)) if big_endian else range(size))], tf.int64)
    return tf.reduce_sum(raw[:size] * weights)


def declared_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """Width x height as the file's header declares them (JPEG, PNG, GIF, BMP, WebP), read without
    decoding; 0 for a format it does not know (the decoder then refuses the file)."""
    # Every branch's reads run (tf.case), past the end of a file shorter than a header: read zeros there,
    # so that an empty or cut-short file is refused by the decoder as not an image, not by the read.
    header = tf.strings.join([tf.strings.substr(encoded, 0, _HEADER_BYTES), b"\0" * _HEADER_BYTES])

    def signature_is(prefix: bytes, offset: int = 0):
        return tf.equal(tf.strings.substr(header, offset, len(prefix)), prefix)

    def uint(offset: int, size: int, big_endian: bool = False):
        return _header_uint(header, offset, size, big_endian)

    def bmp_pixels():
        def signed(value):  # BMP sizes are signed 32-bit; a negative height means top-down rows
            return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))
        return signed(uint(18, 4)) * signed(uint(22, 4))

    def webp_pixels():
        # The first chunk states the size: VP8X (extended: alpha, animation) the canvas, minus one, in
        # 24 bits each; VP8L (lossless) 14 bits each, minus one, after its signature byte; VP8 (lossy)
        # 14 bits each in its frame header.
        def bits14(value, shift=0):
            return tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, shift), tf.constant(0x3FFF, tf.int64))

        return tf.case([
            (signature_is(b"VP8X", 12), lambda: (uint(24, 3) + 1) * (uint(27, 3) + 1)),
            (signature_is(b"VP8L", 12), lambda: (bits14(uint(21, 4)) + 1) * (bits14(uint(21, 4), 14) + 1)),
            (signature_is(b"VP8 ", 12), lambda: bits14(uint(26, 2)) * bits14(uint(28, 2))),
        ], default=lambda: tf.constant(0, tf.int64), exclusive=False)

    return tf.case([
        (tf.io.is_jpeg(encoded), lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64))),
        (signature_is(b"\x89PNG\r\n\x1a\n"), lambda: uint(16, 4, True) * uint(20, 4, True)),
        (signature_is(b"GIF"), lambda: uint(6, 2) * uint(8, 2)),
        (signature_is(b"BM"), bmp_pixels),
        (tf.logical_and(signature_is(b"RIFF"), signature_is(b"WEBP", 8)), webp_pixels),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


def _over_white(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, C] with C of 1 (grey), 2 (grey, alpha), 3 or 4 (RGBA) -> uint8 RGB, what shows
    through transparency made white, as the ingest makes it (slides are light); opaque pixels keep
    their values exactly."""
    channels = tf.shape(image)[-1]
    colour = tf.cond(channels >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))

    def composite():
        alpha = tf.cast(image[..., -1:], tf.float32) / 255.0
        return tf.cast(tf.round(tf.cast(colour, tf.float32) * alpha + 255.0 * (1.0 - alpha)), tf.uint8)

    # Only an image with alpha (an even channel count) pays for the float copy.
    return tf.ensure_shape(tf.cond(tf.equal(channels % 2, 0), composite, lambda: colour), [None, None, 3])


def decode_rgb(encoded: tf.Tensor, max_pixels: int | None = None) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF/WebP (any channel count) -> uint8 [H, W, 3].

    With max_pixels, a file whose header declares more pixels fails with InvalidArgumentError (TF
    Serving answers INVALID_ARGUMENT) before anything is decoded: one request cannot make the server
    allocate what a 30000 x 30000 header asks for.

    JPEGs are decoded with the accurate integer IDCT, as browsers and PIL decode them. TensorFlow's
    default (INTEGER_FAST) differs by about one level per pixel on average, and a model trained on
    those pixels lost 4 points of TEST accuracy on browser-decoded ones.

    Transparent pixels (PNG and WebP alpha, a PNG palette's transparent colour) become white, as in the
    ingest and the browser; decoded as three channels they would keep whatever colour hides under
    them. Two exceptions, as Pillow reads them for the ingest: a BMP's fourth channel is not read as
    alpha, and TensorFlow's GIF decoder gives a GIF's transparent colour as black.
    """
    checks = []
    if max_pixels is not None:
        checks.append(tf.debugging.assert_less_equal(
            declared_pixels(encoded), tf.constant(max_pixels, tf.int64),
            message=f"image too large: more than {max_pixels} pixels"))
    with tf.control_dependencies(checks):
        return tf.case([
            (tf.io.is_jpeg(encoded),
             lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")),
            (tf.equal(tf.strings.substr(encoded, 0, 2), b"BM"),
             lambda: tf.io.decode_bmp(encoded, channels=3)),
        ], default=lambda: _over_white(tf.io.decode_image(encoded, channels=0, expand_animations=False)),
            exclusive=False)


def decode_and_resize(encoded: tf.Tensor, image_size: int, stain_normalisation: bool = False,
                      max_pixels: int | None = None) -> tf.Tensor:
    """One encoded JPEG/PNG/BMP/GIF/WebP (any channel count) -> float32 [size, size, 3] in [0, 1]."""
    image = tf.cast(decode_rgb(encoded, max_pixels), tf.float32)[None]
    return resize_decoded_pixels(image, image_size, stain_normalisation)[0]


def resize_decoded_pixels(pixels: tf.Tensor, image_size: int, stain_normalisation: bool = False,
                          stain_adjusted: tuple[str, ...] = ADJUSTED) -> tf.Tensor:
    """Decoded RGB values 0-255, float32 [batch, H, W, 3] (what a browser canvas gives) -> the model's
    input. decode_and_resize ends here too: one code path for training, TF Serving and the browser.
    With stain_normalisation the whole frame is normalised first (fitting `stain_adjusted`, stain.py),
    so the nucleus finder sees it too."""
    frames = tf.cast(pixels, tf.float32) / 255.0
    if stain_normalisation:
        frames = normalise_stain(frames, stain_adjusted)
    images = nucleus_crop(frames, image_size)
    return tf.clip_by_value(images, 0.0, 1.0)


def crop_boxes(pixels: tf.Tensor, stain_normalisation: bool = False,
               stain_adjusted: tuple[str, ...] = ADJUSTED) -> tf.Tensor:
    """The window resize_decoded_pixels crops from each frame: [batch, 4] = (top, left, height, width) in
    pixels, so a reviewer can see what the model looked at."""
    frames = tf.cast(pixels, tf.float32) / 255.0
    if stain_normalisation:
        frames = normalise_stain(frames, stain_adjusted)
    return nucleus_boxes(frames)


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    image_size = int(custom_config["image_size"])
    stain_normalisation = bool(custom_config.get("stain_normalisation", False))
    max_pixels = custom_config.get("max_pixels")
    encoded = tf.reshape(inputs[IMAGE_KEY], [-1])
    # One image decoded at a time: a served batch of camera-sized frames, each decoded at full size in
    # float32, would otherwise hold several at once and exceed a serving pod's memory
    # (benchmarks/serving_memory.py). Batches of small images decode a little slower this way.
    images = tf.map_fn(
        lambda b: decode_and_resize(b, image_size, stain_normalisation, max_pixels), encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32), parallel_iterations=1)
    outputs = {TRANSFORMED_IMAGE_KEY: images}
    if LABEL_KEY in inputs:  # absent when serving
        outputs[LABEL_KEY] = inputs[LABEL_KEY]
    if SOURCE_KEY in inputs:  # the Trainer draws lab cells apart when it adapts a model to labs
        outputs[SOURCE_KEY] = inputs[SOURCE_KEY]
    return outputs
