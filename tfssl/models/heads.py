"""Projection head, supervised head, and the SimCLR model that joins them to an encoder."""

import keras
import tensorflow as tf
from keras import layers

from tfssl.models.layers import BatchNormRelu, ConfigMixin
from tfssl.models.resnet import ResNet
from tfssl.models.vit import VisionTransformer


@keras.saving.register_keras_serializable("tfssl")
class LinearLayer(ConfigMixin, layers.Layer):
    """Dense layer (N(0, 0.01) init), optionally followed by batch norm.

    With batch norm the dense layer has no bias, and the BN has a learned
    offset only if use_bias, as in the official code. units=0 keeps the input size.
    """

    def __init__(
        self,
        units=0,
        use_bias=True,
        use_bn=False,
        zero_init=False,
        bn_momentum=0.9,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            units=units,
            use_bias=use_bias,
            use_bn=use_bn,
            zero_init=zero_init,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        self.units, self.use_bias, self.use_bn, self.zero_init = units, use_bias, use_bn, zero_init
        self.bn = (
            BatchNormRelu(
                relu=False,
                center=use_bias,
                momentum=bn_momentum,
                synchronized=synchronized,
                dtype=self.dtype_policy,
            )
            if use_bn
            else None
        )
        self.dense = None

    def build(self, input_shape):
        init = "zeros" if self.zero_init else keras.initializers.RandomNormal(stddev=0.01)
        self.dense = layers.Dense(
            self.units or input_shape[-1],
            use_bias=self.use_bias and not self.use_bn,
            kernel_initializer=init,
            dtype=self.dtype_policy,
        )
        self.dense.build(input_shape)

    def call(self, inputs, training=None):
        x = self.dense(inputs)
        return self.bn(x, training=training) if self.use_bn else x


@keras.saving.register_keras_serializable("tfssl")
class ProjectionHead(ConfigMixin, layers.Layer):
    """SimCLR projection head.

    mode 'none': identity; 'linear': one linear+BN layer; 'nonlinear':
    num_layers linear+BN layers, ReLU after all but the last, the middle ones as
    wide as the input. `num_layers_kept` < num_layers builds only the first
    layers (fine-tuning from a middle layer, SimCLRv2's ft_proj_selector).
    Returns (output, list of hidden states starting with the input).
    """

    def __init__(
        self,
        mode="nonlinear",
        out_dim=128,
        num_layers=3,
        num_layers_kept=None,
        bn_momentum=0.9,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            mode=mode,
            out_dim=out_dim,
            num_layers=num_layers,
            num_layers_kept=num_layers_kept,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        bn = dict(
            use_bn=True, bn_momentum=bn_momentum, synchronized=synchronized, dtype=self.dtype_policy
        )
        if mode == "none":
            specs = []
        elif mode == "linear":
            specs = [dict(units=out_dim, use_bias=False)]
        else:
            specs = [dict(units=0, use_bias=True)] * (num_layers - 1) + [
                dict(units=out_dim, use_bias=False)
            ]
        self.relu_after = [mode == "nonlinear" and i < len(specs) - 1 for i in range(len(specs))]
        kept = len(specs) if num_layers_kept is None else min(num_layers_kept, len(specs))
        self.linear_layers = self._track(
            "linear_layer",
            [
                LinearLayer(**spec, **bn, name=f"proj_layer{i}")
                for i, spec in enumerate(specs[:kept])
            ],
        )

    def call(self, inputs, training=None):
        hiddens = [inputs]
        for layer, relu in zip(self.linear_layers, self.relu_after):
            x = layer(hiddens[-1], training=training)
            hiddens.append(tf.nn.relu(x) if relu else x)
        return hiddens[-1], hiddens


def make_encoder(config, dtype):
    """The encoder an encoder config describes: a ResNet, or a ViT for architecture "vit"."""
    config = dict(config)
    if config.pop("architecture", "resnet") == "vit":
        return VisionTransformer(**config, dtype=dtype, name="vit")
    return ResNet(**config, dtype=dtype, name="resnet")


@keras.saving.register_keras_serializable("tfssl")
class PredictionHead(ConfigMixin, layers.Layer):
    """The predictor of BYOL and SimSiam: linear (no bias) + BN + ReLU to hidden_dim, then linear
    with bias to out_dim, no BN, as in both papers. SimSiam makes hidden_dim a bottleneck (a
    quarter of out_dim); BYOL makes it wider than out_dim.

    Kernels start as PyTorch's nn.Linear default, U(+-1/sqrt(fan_in)), as in the authors' code (the
    bias at 0): the
    losses are cosines of the prediction, whose gradient grows as 1 / |prediction|, so the
    projection head's N(0, 0.01) start would give the first steps huge updates.
    """

    def __init__(self, hidden_dim, out_dim, bn_momentum=0.9, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self._config = dict(
            hidden_dim=hidden_dim,
            out_dim=out_dim,
            bn_momentum=bn_momentum,
            synchronized=synchronized,
        )
        init = dict(
            kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
            dtype=self.dtype_policy,
        )
        self.hidden = layers.Dense(hidden_dim, use_bias=False, name="pred_layer0", **init)
        self.bn = BatchNormRelu(
            relu=True, momentum=bn_momentum, synchronized=synchronized, dtype=self.dtype_policy
        )
        self.output_layer = layers.Dense(out_dim, name="pred_layer1", **init)

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.bn.build((*input_shape[:-1], self.hidden.units))
        self.output_layer.build((*input_shape[:-1], self.hidden.units))

    def call(self, inputs, training=None):
        return self.output_layer(self.bn(self.hidden(inputs), training=training))


@keras.saving.register_keras_serializable("tfssl")
class SimCLRModel(ConfigMixin, keras.Model):
    """Encoder + projection head + optional supervised head (named head_supervised).

    call() returns a dict: 'hiddens' (encoder features), 'projection'
    (projection head output), and 'logits' when there is a supervised head.
    The supervised head reads the ft_proj_selector-th hidden state of the
    projection head; with stop_gradient_to_head (linear eval during
    pretraining) no gradient flows from it into the encoder.
    """

    def __init__(
        self,
        encoder_config,
        head_config,
        num_classes=0,
        ft_proj_selector=0,
        stop_gradient_to_head=False,
        zero_init_logits=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            encoder_config=encoder_config,
            head_config=head_config,
            num_classes=num_classes,
            ft_proj_selector=ft_proj_selector,
            stop_gradient_to_head=stop_gradient_to_head,
            zero_init_logits=zero_init_logits,
        )
        self.encoder = make_encoder(encoder_config, self.dtype_policy)
        self.projection_head = ProjectionHead(
            **head_config, dtype=self.dtype_policy, name="projection_head"
        )
        self.ft_proj_selector = ft_proj_selector
        self.stop_gradient_to_head = stop_gradient_to_head
        self.supervised_head = (
            LinearLayer(
                num_classes,
                zero_init=zero_init_logits,
                dtype=self.dtype_policy,
                name="head_supervised",
            )
            if num_classes
            else None
        )

    def call(self, images, training=None, return_endpoints=False):
        endpoints = self.encoder(images, training=training, return_endpoints=True)
        hiddens = endpoints["final_avg_pool"]
        projection, proj_hiddens = self.projection_head(hiddens, training=training)
        outputs = {"hiddens": hiddens, "projection": projection}
        if self.supervised_head is not None:
            head_input = proj_hiddens[min(self.ft_proj_selector, len(proj_hiddens) - 1)]
            if self.stop_gradient_to_head:
                head_input = tf.stop_gradient(head_input)
            outputs["logits"] = self.supervised_head(head_input, training=training)
        if return_endpoints:
            outputs.update(endpoints, proj_head_input=hiddens, proj_head_output=projection)
        return outputs
