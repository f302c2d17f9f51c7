"""2-D convolution whose weight gradient, for small outputs and strided 1x1 kernels, is matrix
products.

oneDNN's backward-weights convolution is slow when the output map is small (ResNet's last
block group: 4x4 at 32 px, 7x7 at 224 px). For a 3x3, 512-channel convolution on 512 views of
4x4 (bf16, AMX) it took 170 ms; the same gradient as nine matrix products took 28 ms, and the
ResNet-18 pretrain step went from 94 to 112 images/s. At 8x8 the products alone were faster
too (38 ms against 55 ms) but the whole step was slower, so larger outputs keep the native kernel.

1x1 convolutions at a stride (ResNet's projection shortcuts) always take the matrix product, a
single one, even with --matmul_conv_grads=false: oneDNN on an AVX2-only CPU (TF 2.21) returns wrong
weight gradients for them when the input has fewer than 8 channels (e.g. 3 or 4), or corrupts the
heap and aborts the process (AMD EPYC, Zen 3); the forward pass and the input gradient are right.

For y = conv(x, w) with a k x k kernel, stride s and x already padded (VALID, or SAME at stride 1
after padding it here), each kernel tap (i, j) is one matrix product:

    dw[i, j] = (x[:, i::s, j::s, :] cut to the output size, as (N*OH*OW, C))^T
               @ (dy as (N*OH*OW, O)).
"""

import tensorflow as tf

#: Outputs of at most this many pixels (7x7) use the matrix-product weight gradient.
MAX_OUTPUT_PIXELS = 49

_matmul_weight_grads = True


def set_matmul_weight_grads(enabled):
    """Process-wide switch (--matmul_conv_grads); the forward pass and input gradient are
    unchanged."""
    global _matmul_weight_grads
    _matmul_weight_grads = bool(enabled)


def output_size(size, kernel_size, strides, padding):
    return -(-size // strides) if padding == "SAME" else (size - kernel_size) // strides + 1


def uses_matmul_weight_grad(input_shape, kernel_size, strides, padding):
    """Whether conv2d takes the matrix-product weight gradient for this (static) input shape."""
    height, width = input_shape[1], input_shape[2]
    if height is None or width is None:
        return False
    if kernel_size == 1 and strides > 1:
        return True  # switch or not: oneDNN's own can be wrong or crash (module docstring)
    if not _matmul_weight_grads:
        return False
    if padding == "SAME" and strides != 1:
        return False  # SAME at a stride pads unevenly; ConvFixedPadding never asks for it
    out_pixels = output_size(height, kernel_size, strides, padding) * output_size(
        width, kernel_size, strides, padding
    )
    return out_pixels <= MAX_OUTPUT_PIXELS


def same_padding(kernel_size):
    """TensorFlow's SAME padding at stride 1: (before, after) on each spatial axis."""
    before = (kernel_size - 1) // 2
    return before, kernel_size - 1 - before


def weight_gradient(x, dy, kernel_size, strides, padding):
    """dL/dw (k, k, C, O) of conv(x, w) from dy = dL/dy, as one matrix product per kernel tap."""
    if padding == "SAME" and kernel_size > 1:
        before, after = same_padding(kernel_size)
        x = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
    out_height, out_width = dy.shape[1], dy.shape[2]
    dy_matrix = tf.reshape(dy, [-1, dy.shape[-1]])
    taps = []
    for i in range(kernel_size):
        for j in range(kernel_size):
            if strides == 1:  # a plain Slice: cheaper than a StridedSlice
                tap = tf.slice(x, [0, i, j, 0], [-1, out_height, out_width, -1])
            else:
                tap = x[
                    :,
                    i : i + strides * (out_height - 1) + 1 : strides,
                    j : j + strides * (out_width - 1) + 1 : strides,
                ]
            taps.append(tf.matmul(tf.reshape(tap, [-1, x.shape[-1]]), dy_matrix, transpose_a=True))
    return tf.reshape(tf.stack(taps), [kernel_size, kernel_size, x.shape[-1], dy.shape[-1]])


def conv2d(x, kernel, strides, padding):
    """tf.nn.conv2d (NHWC, a square kernel and strides, padding 'SAME' or 'VALID'); where
    uses_matmul_weight_grad() says so, its weight gradient is weight_gradient()."""
    kernel_size = kernel.shape[0]
    if not uses_matmul_weight_grad(x.shape, kernel_size, strides, padding):
        return tf.nn.conv2d(x, kernel, strides, padding)

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x),
                filter=kernel,
                out_backprop=dy,
                strides=[1, strides, strides, 1],
                padding=padding,
            )
            with tf.control_dependencies(
                [dy]
            ):  # cut the taps only when dy exists, not all at once early
                x_now = tf.identity(x)
            return dx, weight_gradient(x_now, dy, kernel_size, strides, padding)

        return tf.nn.conv2d(x, kernel, strides, padding), gradient

    return convolve(x, kernel)
