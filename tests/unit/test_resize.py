import numpy as np
import pytest
import tensorflow as tf

from models.transform.resize import antialiased_resize


@pytest.mark.parametrize("height, width", [(240, 320), (100, 90), (80, 80), (40, 60), (961, 1280)])
def test_matches_tensorflow_antialiased_bilinear(height, width):
    images = tf.constant(np.random.default_rng(height).random((2, height, width, 3), dtype=np.float32))
    expected = tf.image.resize(images, [80, 80], method="bilinear", antialias=True)
    np.testing.assert_allclose(antialiased_resize(images, 80).numpy(), expected.numpy(), atol=1e-5)


def test_graph_has_no_scale_and_translate_op():
    fn = tf.function(lambda x: antialiased_resize(x, 80)).get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32))
    ops = {op.type for op in fn.graph.get_operations()}
    assert "ScaleAndTranslate" not in ops and ("MatMul" in ops or "BatchMatMulV2" in ops)
