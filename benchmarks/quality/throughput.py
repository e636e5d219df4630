"""Input pipeline speed alone (no model): images/s delivered by the Trainer's tf.data pipeline (over
Transform's output, with its augmentations) and by the tutorial's Keras ImageDataGenerator
(flow_from_directory over the JPEG folders: rescale, 10-degree rotations, 10 % shifts, horizontal flips)."""
from __future__ import annotations

import glob
import os
import time


def _rate(batches, n_batches: int, warmup: int = 3) -> float:
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    count, start = 0, time.perf_counter()
    for _ in range(n_batches):
        images = next(it)[0]
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def latest(pattern: str) -> str:
    """The newest numbered artifact folder matching pattern (TFX numbers them by execution)."""
    found = sorted(glob.glob(pattern), key=lambda p: int(os.path.basename(p.rstrip("/"))))
    if not found:
        raise FileNotFoundError(f"nothing matches {pattern}")
    return found[-1]


def trainer_pipeline_images_per_s(pipeline_root: str, batch_size: int = 32, n_batches: int = 150) -> float:
    import tensorflow_transform as tft

    from models.trainer.data import make_dataset

    examples = latest(os.path.join(pipeline_root, "Transform", "transformed_examples", "*"))
    graph = latest(os.path.join(pipeline_root, "Transform", "transform_graph", "*"))
    ds = make_dataset([os.path.join(examples, "Split-train", "*")], tft.TFTransformOutput(graph),
                      batch_size, training=True, seed=1).repeat()
    return _rate(ds.as_numpy_iterator(), n_batches)


def image_data_generator_images_per_s(train_dir: str, image_size: int = 80, batch_size: int = 32,
                                      n_batches: int = 150) -> float:
    from tf_keras.preprocessing.image import ImageDataGenerator

    from benchmarks.quality.tutorial_recipe import RECIPE

    aug = RECIPE["augmentation"]
    generator = ImageDataGenerator(rescale=1.0 / 255, rotation_range=aug["rotation_degrees"],
                                   width_shift_range=aug["shift_fraction"], height_shift_range=aug["shift_fraction"],
                                   horizontal_flip=aug["horizontal_flip"], fill_mode=aug["fill"])
    flow = generator.flow_from_directory(train_dir, target_size=(image_size, image_size),
                                         batch_size=batch_size, shuffle=True, seed=1)
    return _rate(flow, n_batches)


def trainer_model_images_per_s(pipeline_root: str, model: str, image_size: int, num_classes: int,
                               learning_rate: float, batch_size: int = 32, n_images: int = 640) -> float:
    """Training speed of a pipeline model over its own input pipeline: n_images after a one-batch
    warm-up (compilation), as the Trainer compiles it."""
    import tensorflow_transform as tft

    from models.trainer import architectures
    from models.trainer.data import make_dataset

    examples = latest(os.path.join(pipeline_root, "Transform", "transformed_examples", "*"))
    graph = latest(os.path.join(pipeline_root, "Transform", "transform_graph", "*"))
    ds = make_dataset([os.path.join(examples, "Split-train", "*")], tft.TFTransformOutput(graph),
                      batch_size, training=True, seed=1).repeat()
    net = architectures.build_model(model, image_size, num_classes)
    net.compile(optimizer=architectures.optimizer_for(model, learning_rate), loss="sparse_categorical_crossentropy")
    net.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
    start = time.perf_counter()
    net.fit(ds, steps_per_epoch=n_images // batch_size, epochs=1, verbose=0)
    return n_images // batch_size * batch_size / (time.perf_counter() - start)
