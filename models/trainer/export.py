"""The exported SavedModel: the Transform graph, the model and the review score behind three signatures
that take raw encoded images (TF Serving), serialized tf.Examples (the Evaluator) or decoded pixels
(the browser model), each giving the outputs models/features.py names; then TF Serving's warm-up file."""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models import features
from models.trainer import dihedral, typicality
from models.trainer.params import TrainerParams
from models.transform.preprocessing import crop_boxes, resize_decoded_pixels
from serving.warmup import packaged_warmup_images, write_warmup_requests


def export_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                      class_names: list[str], image_size: int, stain_normalisation: bool,
                      typical: dict | None, average_symmetries: bool) -> dict:
    model.tft_layer = tf_transform_output.transform_features_layer()
    names = tf.constant(class_names)
    if typical:
        both = keras.Model(model.input, [model.get_layer(typicality.FEATURE_LAYER).output, model.output])
        means = tf.constant(typical["means"])
        whitening = tf.constant(typicality.whitening(typical["precision"], typical["threshold"]))

    def classify(model_inputs: tf.Tensor) -> dict:
        """Model inputs -> the outputs every signature returns."""
        if typical:
            pooled, probabilities = dihedral.run_views(both, model_inputs, average_symmetries)
            atypicality = typicality.min_whitened_distance(tf.cast(pooled, tf.float32), means, whitening)
        else:
            probabilities = dihedral.run_views(model, model_inputs, average_symmetries)
            atypicality = tf.zeros(tf.shape(model_inputs)[:1])
        probabilities = tf.cast(probabilities, tf.float32)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {features.PROBABILITIES: probabilities, features.CLASS_ID: class_id,
                features.CLASS_NAME: tf.gather(names, class_id),
                features.ATYPICALITY: tf.cast(atypicality, tf.float32)}

    def predict(raw_features: dict) -> dict:
        return classify(model.tft_layer(raw_features)[features.TRANSFORMED_IMAGE_KEY])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.SERVING_INPUT)])
    def serve_images(images):
        # The schema declares the image feature with fixed shape [1]: feed a dense [batch, 1] tensor.
        return predict({features.IMAGE_KEY: tf.reshape(images, [-1, 1])})

    raw_spec = tf_transform_output.raw_feature_spec()
    image_only = {features.IMAGE_KEY: raw_spec[features.IMAGE_KEY]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.EXAMPLES_INPUT)])
    def serve_examples(serialized):
        return predict(tf.io.parse_example(serialized, image_only))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=features.BROWSER_INPUT)])
    def serve_pixels(pixels):
        # For TensorFlow.js: no decode op there, and the resize is rebuilt from ops it has.
        return {**classify(resize_decoded_pixels(pixels, image_size, stain_normalisation)),
                # int32: tfjs's converter names outputs by dtype and shape, and a float [batch, 4]
                # would be indistinguishable from the probabilities.
                features.CROP_BOX: tf.cast(tf.round(crop_boxes(pixels, stain_normalisation)), tf.int32)}

    return {features.SERVING_SIGNATURE: serve_images.get_concrete_function(),
            features.EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
            features.BROWSER_SIGNATURE: serve_pixels.get_concrete_function()}


def save_model(model: keras.Model, model_dir: str, tf_transform_output: tft.TFTransformOutput,
               params: TrainerParams, typical: dict | None) -> None:
    """The SavedModel in TF Serving's layout, with its warm-up requests."""
    signatures = export_signatures(model, tf_transform_output, list(params.class_names), params.image_size,
                                   params.stain_normalisation, typical, params.average_symmetries)
    # No optimizer state: serving never needs it, and it would triple the pushed size (Adam, Adadelta).
    model.save(model_dir, save_format="tf", signatures=signatures, include_optimizer=False)
    write_warmup_requests(model_dir, list(params.warmup_images) or packaged_warmup_images(), params.serving_model_name)
