from __future__ import annotations

import numpy as np
import pytest

from components.trainer import models


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_models_output_class_probabilities(name):
    model = models.build_model(name, 80, 4)
    out = model.predict(np.random.default_rng(0).random((3, 80, 80, 3), dtype=np.float32), verbose=0)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_default_model_is_far_smaller_than_the_tutorial_cnn():
    default = models.build_model("default", 80, 4).count_params()
    tutorial = models.build_model("tutorial_cnn", 80, 4).count_params()
    assert default < 500_000
    assert tutorial > 10_000_000  # Flatten -> Dense(128) holds most of the tutorial's weights


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        models.build_model("vgg", 80, 4)
