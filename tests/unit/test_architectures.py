from __future__ import annotations

import numpy as np
import pytest

from models.trainer import architectures


@pytest.mark.parametrize("name", architectures.MODEL_NAMES)
def test_models_output_class_probabilities(name):
    model = architectures.build_model(name, 80, 4)
    out = model.predict(np.random.default_rng(0).random((3, 80, 80, 3), dtype=np.float32), verbose=0)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_default_model_is_far_smaller_than_the_tutorial_cnn():
    default = architectures.build_model("default", 80, 4).count_params()
    tutorial = architectures.build_model("tutorial_cnn", 80, 4).count_params()
    assert default < 500_000
    assert tutorial > 10_000_000  # Flatten -> Dense(128) holds most of the tutorial's weights


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        architectures.build_model("vgg", 80, 4)


@pytest.fixture
def restore_policy():
    yield
    architectures.keras.mixed_precision.set_global_policy("float32")


def test_trainer_takes_mixed_precision_on_a_gpu_and_float32_on_the_cpu(monkeypatch, restore_policy):
    import tensorflow as tf

    from models.trainer import run_fn

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu0"] if kind == "GPU" else [])
    assert isinstance(run_fn.distribution_strategy(), tf.distribute.OneDeviceStrategy)
    assert architectures.keras.mixed_precision.global_policy().name == "mixed_float16"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    run_fn.distribution_strategy()
    assert architectures.keras.mixed_precision.global_policy().name == "float32"


def test_default_model_trains_under_mixed_precision_with_float32_probabilities(restore_policy):
    # What a GPU Trainer builds; float16 kernels also run (slowly) on the CPU, so the path is checked here.
    architectures.keras.mixed_precision.set_global_policy("mixed_float16")
    model = architectures.build_model("default", 32, 4)
    assert model.get_layer("features").compute_dtype == "float16"
    model.compile(optimizer=architectures.optimizer_for("default", 1e-3), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    loss = model.train_on_batch(images, np.arange(8) % 4)
    out = model.predict(images, verbose=0)
    assert np.isfinite(loss) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-3)


def test_default_model_halves_the_resolution_in_its_first_convolution():
    # What keeps a CPU training step cheap: every later layer sees 40x40, not 80x80.
    model = architectures.build_model("default", 80, 4)
    first_conv = next(layer for layer in model.layers if isinstance(layer, architectures.keras.layers.Conv2D))
    assert first_conv.output.shape[1:3] == (40, 40)


def test_a_model_trained_in_mixed_precision_comes_back_in_float32(monkeypatch, restore_policy, tmp_path):
    # A GPU Trainer trains in mixed precision; what it returns is exported and scored for review, and
    # float16 layers there would run slowly on TF Serving's CPUs and give a review score fitted on
    # float16 features that the browser computes in float32.
    import tensorflow as tf

    from models.trainer import run_fn
    from models.trainer.params import TrainerParams

    def gpu_like_strategy():
        architectures.keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.get_strategy()

    monkeypatch.setattr(run_fn, "distribution_strategy", gpu_like_strategy)
    params = TrainerParams(class_names=("A", "B", "C", "D"), image_size=32, stain_normalisation=False,
                           model="default", epochs=1, batch_size=4, learning_rate=1e-3, early_stopping_patience=0,
                           average_symmetries=False, seed=1, serving_model_name="m", warmup_images=())
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3), dtype=np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 4)).batch(4)
    model = run_fn.train(params, ds, ds, str(tmp_path))
    assert {layer.compute_dtype for layer in model.layers if layer.weights} == {"float32"}
    assert architectures.keras.mixed_precision.global_policy().name == "float32"
    assert model.predict(images, verbose=0).shape == (8, 4)

    # The copy carries the trained weights: it answers as the mixed-precision model does.
    architectures.keras.mixed_precision.set_global_policy("mixed_float16")
    trained = architectures.build_model("default", 32, 4)
    trained.compile(optimizer=architectures.optimizer_for("default", 1e-2), loss="sparse_categorical_crossentropy")
    for _ in range(3):
        trained.train_on_batch(images, np.arange(8) % 4)
    copy = run_fn.in_float32(trained, params)
    np.testing.assert_allclose(copy.predict(images, verbose=0), trained.predict(images, verbose=0), atol=1e-3)
