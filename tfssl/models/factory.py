"""Builds the ResNet-based networks from a run config."""

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.models.heads import SimCLRModel

CIFAR_STEM_MAX_SIZE = 32  # images up to this size get the 3x3 stride-1 stem and no max-pool


def build_by_calling(model, image_shape):
    """Creates a Keras model's variables by calling it once on zeros."""
    model(tf.zeros([1, *image_shape]), training=False)
    return model


def encoder_config(
    cfg, image_size, synchronized=False, fine_tune_after_block=-1, depth=0, width=0.0
):
    """The encoder's constructor arguments: a ResNet (depth, width: a distilled student's), or the
    ViT of --architecture=vit."""
    if cfg.architecture == "vit":
        if image_size % cfg.vit_patch_size:
            raise ConfigError(
                f"--vit_patch_size={cfg.vit_patch_size} does not divide the {image_size}-px "
                "images; choose a divisor of the size or set --image_size"
            )
        return dict(
            architecture="vit",
            image_size=image_size,
            patch_size=cfg.vit_patch_size,
            depth=cfg.vit_depth,
            width=cfg.vit_width,
            num_heads=cfg.vit_num_heads,
            fine_tune_after_block=fine_tune_after_block,
        )
    return dict(
        depth=depth or cfg.resnet_depth,
        width_multiplier=width or cfg.width_multiplier,
        cifar_stem=image_size <= CIFAR_STEM_MAX_SIZE,
        sk_ratio=cfg.sk_ratio,
        se_ratio=cfg.se_ratio,
        bn_momentum=cfg.batch_norm_decay,
        synchronized=synchronized,
        fine_tune_after_block=fine_tune_after_block,
    )


def head_config(cfg, synchronized=False, mode=None, num_layers_kept=None):
    return dict(
        mode=mode or cfg.proj_head_mode,
        out_dim=cfg.proj_out_dim,
        num_layers=cfg.num_proj_layers,
        num_layers_kept=num_layers_kept,
        bn_momentum=cfg.batch_norm_decay,
        synchronized=synchronized,
    )


def build_simclr_model(cfg, num_classes, image_shape, num_replicas=1, **options):
    """A built SimCLRModel. options: fine_tune_after_block, ft_proj_selector, stop_gradient_to_head,
    zero_init_logits, depth, width, proj_head_mode, num_proj_layers_kept."""
    synchronized = cfg.global_bn and num_replicas > 1
    encoder = encoder_config(
        cfg,
        image_shape[0],
        synchronized,
        options.get("fine_tune_after_block", -1),
        options.get("depth", 0),
        options.get("width", 0.0),
    )
    head = head_config(
        cfg, synchronized, options.get("proj_head_mode"), options.get("num_proj_layers_kept")
    )
    model = SimCLRModel(
        encoder,
        head,
        num_classes=num_classes,
        ft_proj_selector=options.get("ft_proj_selector", 0),
        stop_gradient_to_head=options.get("stop_gradient_to_head", False),
        zero_init_logits=options.get("zero_init_logits", False),
        name="simclr_model",
    )
    return build_by_calling(model, image_shape)
