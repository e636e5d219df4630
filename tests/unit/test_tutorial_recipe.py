"""The tutorial's published recipe as the harness trains it (benchmarks/quality/tutorial_recipe.py)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.quality import tutorial_recipe
from pipeline.config import REPO_ROOT

SAMPLE_TRAIN = REPO_ROOT / "data" / "sample" / "TRAIN"
EOSINOPHIL = SAMPLE_TRAIN / "EOSINOPHIL" / "_0_1169.jpeg"


def test_images_load_as_keras_load_img_gives_them():
    import keras

    expected = np.asarray(keras.utils.load_img(EOSINOPHIL, target_size=(80, 80)))
    np.testing.assert_array_equal(tutorial_recipe.load_image(EOSINOPHIL), expected)


@pytest.mark.parametrize("theta,tx,ty,flip", [(7.0, 0, 0, False), (0, 5, 0, False), (0, 0, -5, True),
                                               (-8.0, 3.0, -6.0, False), (9.3, -7.2, 2.5, True)])
def test_batch_transform_is_image_data_generators(theta, tx, ty, flip):
    from tf_keras.preprocessing.image import ImageDataGenerator

    image = tutorial_recipe.load_image(EOSINOPHIL).astype(np.float32)
    expected = ImageDataGenerator().apply_transform(image, {"theta": theta, "tx": tx, "ty": ty,
                                                            "flip_horizontal": flip})
    got = tutorial_recipe.affine_batch(image[None], np.array([theta]), np.array([tx]), np.array([ty]),
                                       np.array([flip]))[0]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_augmentation_is_seeded_and_stays_in_the_pixel_range():
    images = np.stack([tutorial_recipe.load_image(EOSINOPHIL)] * 8)
    first = tutorial_recipe.augment_batch(images, np.random.default_rng(3))
    again = tutorial_recipe.augment_batch(images, np.random.default_rng(3))
    other = tutorial_recipe.augment_batch(images, np.random.default_rng(4))
    assert first.dtype == np.float32 and first.shape == images.shape
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first[0], first[1])  # drawn per image
    assert first.min() >= images.min() and first.max() <= images.max()


def test_batches_cover_every_image_once_per_epoch_in_a_new_order():
    images = np.zeros((10, 8, 8, 3), np.uint8) + np.arange(10, dtype=np.uint8)[:, None, None, None]
    data = tutorial_recipe.AugmentedBatches(images, np.arange(10), seed=1, batch_size=4)
    assert len(data) == 3
    epoch0 = np.concatenate([data[i][1] for i in range(len(data))])
    data.on_epoch_end()
    epoch1 = np.concatenate([data[i][1] for i in range(len(data))])
    assert sorted(epoch0) == sorted(epoch1) == list(range(10))
    assert list(epoch0) != list(epoch1)
    x, y = data[0]
    np.testing.assert_array_equal(x[:, 0, 0, 0], y)  # images stay with their labels


def test_short_training_records_the_run_and_its_weights_reload(tmp_path):
    images, labels = tutorial_recipe.load_folder(SAMPLE_TRAIN)
    model, record = tutorial_recipe.train(images[::4], labels[::4], seed=1, epochs=1, verbose=0)
    assert record["epochs_run"] == 1 and record["train_examples"] == len(images[::4])
    assert record["train_images_per_s"] > 0 and len(record["train_loss_by_epoch"]) == 1
    assert record["trainer_s"] == record["seconds_this_process"] and not record["resumed"]
    assert model.count_params() == 10_702_788  # the tutorial's ~10.7 M weights at 80x80
    weights = tmp_path / "tutorial.weights.h5"
    model.save_weights(weights)
    again = tutorial_recipe.classifier()
    again.load_weights(weights)
    np.testing.assert_allclose(again.predict(images[:4].astype(np.float32), verbose=0),
                               model.predict(images[:4].astype(np.float32), verbose=0), atol=1e-6)


def test_a_folder_without_images_or_classes_is_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="has no class folder EOSINOPHIL, LYMPHOCYTE, MONOCYTE, NEUTROPHIL$"):
        tutorial_recipe.load_folder(tmp_path)
    for name in tutorial_recipe.CLASS_NAMES:
        (tmp_path / name).mkdir()
    with pytest.raises(SystemExit, match="no images under"):
        tutorial_recipe.load_folder(tmp_path)


def test_a_backup_from_other_code_is_not_resumed(tmp_path):
    (tmp_path / "code_fingerprint").write_text("0123456789abcdef")
    images = np.zeros((4, 80, 80, 3), np.uint8)
    with pytest.raises(SystemExit, match="was made by other code; delete it to start over"):
        tutorial_recipe.train(images, np.zeros(4, int), seed=1, epochs=1, verbose=0, backup_dir=str(tmp_path))


def test_an_epochs_batches_follow_from_seed_and_epoch_alone():
    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    run = tutorial_recipe.AugmentedBatches(images, np.arange(6), seed=2, batch_size=3)
    run.on_epoch_end()
    run.on_epoch_end()
    resumed = tutorial_recipe.AugmentedBatches(images, np.arange(6), seed=2, batch_size=3)
    resumed.set_epoch(2)  # as BackupAndRestore resumes at epoch 2
    for i in range(len(run)):
        np.testing.assert_array_equal(run[i][0], resumed[i][0])
        np.testing.assert_array_equal(run[i][1], resumed[i][1])
