"""tfssl.models.conv: the matrix-product weight gradient equals the convolution's own, and loops in
numpy."""

import numpy as np
import pytest
import tensorflow as tf

from tfssl.models import conv, resnet

# (input size, channels in, channels out, kernel, stride, padding): every case takes the matmul
# path.
SMALL_OUTPUTS = [
    (4, 5, 6, 3, 1, "SAME"),
    (7, 3, 4, 3, 1, "SAME"),
    (8, 4, 6, 1, 2, "VALID"),
    (10, 3, 5, 3, 2, "VALID"),
    (4, 2, 3, 1, 1, "SAME"),
    (5, 2, 3, 2, 1, "SAME"),
]


def numpy_weight_gradient(x, dy, kernel_size, stride, padding):
    """dw[i, j, c, o] = sum_{n, h, v} x_padded[n, h*s + i, v*s + j, c] * dy[n, h, v, o], by
    loops."""
    if padding == "SAME":
        before = (kernel_size - 1) // 2
        after = kernel_size - 1 - before
        x = np.pad(x, [(0, 0), (before, after), (before, after), (0, 0)])
    _, out_height, out_width, _ = dy.shape
    dw = np.zeros([kernel_size, kernel_size, x.shape[-1], dy.shape[-1]])
    for i in range(kernel_size):
        for j in range(kernel_size):
            for h in range(out_height):
                for v in range(out_width):
                    dw[i, j] += x[:, h * stride + i, v * stride + j, :].T @ dy[:, h, v, :]
    return dw


def numpy_input_gradient(x_shape, kernel, dy, stride, padding):
    """dx_padded[n, h*s + i, v*s + j, :] += dy[n, h, v, :] @ w[i, j]^T by loops, then the padding
    cut off."""
    kernel_size = kernel.shape[0]
    before = (kernel_size - 1) // 2 if padding == "SAME" else 0
    after = kernel_size - 1 - before if padding == "SAME" else 0
    batch, height, width, channels = x_shape
    dx = np.zeros([batch, height + before + after, width + before + after, channels])
    _, out_height, out_width, _ = dy.shape
    for i in range(kernel_size):
        for j in range(kernel_size):
            for h in range(out_height):
                for v in range(out_width):
                    dx[:, h * stride + i, v * stride + j, :] += dy[:, h, v, :] @ kernel[i, j].T
    return dx[:, before : before + height, before : before + width, :]


@pytest.mark.parametrize("size,cin,cout,kernel_size,stride,padding", SMALL_OUTPUTS)
def test_weight_gradient_equals_the_formula_and_tensorflow(
    size, cin, cout, kernel_size, stride, padding
):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, size, size, cin)).astype(np.float32)
    kernel = rng.normal(size=(kernel_size, kernel_size, cin, cout)).astype(np.float32)
    assert conv.uses_matmul_weight_grad(x.shape, kernel_size, stride, padding)
    out_size = conv.output_size(size, kernel_size, stride, padding)
    dy = rng.normal(size=(3, out_size, out_size, cout)).astype(np.float32)

    x_t, kernel_t = tf.constant(x), tf.constant(kernel)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x_t, kernel_t])
        ours = conv.conv2d(x_t, kernel_t, stride, padding)
        native = tf.nn.conv2d(x_t, kernel_t, stride, padding)
        ours_loss, native_loss = tf.reduce_sum(ours * dy), tf.reduce_sum(native * dy)
    np.testing.assert_allclose(ours.numpy(), native.numpy(), rtol=1e-5, atol=1e-5)
    dx_ours, dw_ours = tape.gradient(ours_loss, [x_t, kernel_t])
    np.testing.assert_allclose(
        dw_ours.numpy(),
        numpy_weight_gradient(x, dy, kernel_size, stride, padding),
        rtol=1e-4,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        dx_ours.numpy(),
        numpy_input_gradient(x.shape, kernel, dy, stride, padding),
        rtol=1e-4,
        atol=1e-4,
    )
    if not onednn_breaks_this_weight_gradient(kernel_size, stride, cin):
        dx_native, dw_native = tape.gradient(native_loss, [x_t, kernel_t])
        np.testing.assert_allclose(dw_ours.numpy(), dw_native.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx_ours.numpy(), dx_native.numpy(), rtol=1e-5, atol=1e-5)


def onednn_breaks_this_weight_gradient(kernel_size, stride, in_channels):
    """oneDNN on AVX2-only CPUs gets these weight gradients wrong or aborts the process (conv.py).
    TensorFlow's conv gradient computes the weight gradient even when only dx is asked for, so
    neither is asked for here."""
    return kernel_size == 1 and stride > 1 and in_channels < 8


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_strided_1x1_takes_the_matrix_product_at_any_size(padding):
    """ResNet's projection shortcut from 3 channels, output 16x16 (256 pixels, past the small-output
    limit)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
    kernel = rng.normal(size=(1, 1, 3, 5)).astype(np.float32)
    dy = rng.normal(size=(2, 16, 16, 5)).astype(np.float32)
    assert conv.uses_matmul_weight_grad(x.shape, 1, 2, padding)
    kernel_t = tf.constant(kernel)
    with tf.GradientTape() as tape:
        tape.watch(kernel_t)
        loss = tf.reduce_sum(conv.conv2d(tf.constant(x), kernel_t, 2, padding) * dy)
    np.testing.assert_allclose(
        tape.gradient(loss, kernel_t).numpy(),
        numpy_weight_gradient(x, dy, 1, 2, padding),
        rtol=1e-4,
        atol=1e-4,
    )


def test_large_outputs_and_the_switch_keep_the_native_gradient():
    assert not conv.uses_matmul_weight_grad((2, 8, 8, 3), 3, 1, "SAME")  # 64 output pixels
    assert not conv.uses_matmul_weight_grad((2, None, None, 3), 3, 1, "SAME")
    assert not conv.uses_matmul_weight_grad((2, 4, 4, 3), 3, 2, "SAME")  # uneven SAME padding
    conv.set_matmul_weight_grads(False)
    try:
        assert not conv.uses_matmul_weight_grad((2, 4, 4, 3), 3, 1, "SAME")
        assert conv.uses_matmul_weight_grad((2, 8, 8, 4), 1, 2, "VALID")  # oneDNN's own would crash
    finally:
        conv.set_matmul_weight_grads(True)


def test_resnet_gradients_equal_with_and_without_the_switch():
    """The whole encoder (its 4x4 last group takes the matmul path at 28 px) trains the same either
    way."""
    images = tf.random.stateless_uniform([4, 28, 28, 1], seed=[1, 2])

    def gradients(enabled):
        conv.set_matmul_weight_grads(enabled)
        try:
            tf.keras.utils.set_random_seed(3)
            model = resnet.ResNet(depth=18, width_multiplier=1 / 8, cifar_stem=True)
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(images, training=True)))
            return tape.gradient(loss, model.trainable_variables)
        finally:
            conv.set_matmul_weight_grads(True)

    for ours, native in zip(gradients(True), gradients(False)):
        np.testing.assert_allclose(ours.numpy(), native.numpy(), rtol=1e-3, atol=1e-4)
