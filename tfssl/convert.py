"""--mode=convert_checkpoint: an official SimCLR TF2 checkpoint as a tfssl run directory.

    python run.py --mode=convert_checkpoint --checkpoint=OFFICIAL --model_dir=OUT

OFFICIAL is a model_dir or checkpoint prefix that google-research/simclr tf2/run.py wrote, or a
SavedModel it exported. OUT receives, once, a checkpoint of the same network (ResNet, projection
head, and the linear head if it has one) and a flags.json, so that --checkpoint=OUT (fine-tune,
continued pretraining), --teacher=OUT, --mode=eval and --mode=export take it like a tfssl
pretraining run. --checkpoint=OFFICIAL works as well without converting; converting reads and
checks the official file once.
"""

import logging
import os

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.train.checkpoints import resolve_checkpoint
from tfssl.train.rundir import RunDirectory
from tfssl.train.warm_start import official_model, official_network

log = logging.getLogger("tfssl")

JOB = "convert_checkpoint"


def convert_checkpoint(cfg):
    """Writes OUT/ckpt-0 and OUT/flags.json; returns OUT's checkpoint prefix."""
    if not cfg.checkpoint or not cfg.model_dir:
        raise ConfigError(
            "--mode=convert_checkpoint needs --checkpoint=<official model_dir, prefix or "
            "SavedModel> and --model_dir=<new directory>"
        )
    resolved = resolve_checkpoint(cfg.checkpoint)
    if not resolved.official:
        raise ConfigError(
            f"--checkpoint={cfg.checkpoint} is not an official SimCLR TF2 checkpoint; a tfssl "
            "one needs no conversion"
        )
    if tf.train.latest_checkpoint(cfg.model_dir) or os.path.exists(
        os.path.join(cfg.model_dir, "flags.json")
    ):
        raise ConfigError(
            f"--model_dir={cfg.model_dir} already holds a run; conversion writes a new one"
        )
    _, extra = official_network(resolved.prefix)
    size = 32 if extra["cifar_stem"] else 64  # the stem follows the image size
    model, converted, extra = official_model(
        cfg.replace(checkpoint=""), resolved, (size, size, extra["channels"])
    )
    converted = converted.replace(
        mode="pretrain", lineareval_while_pretraining=bool(extra["num_classes"])
    )
    run_dir = RunDirectory(cfg.model_dir).open(JOB)
    try:
        run_dir.write_flags({**converted.to_dict(), "converted_from": resolved.prefix}, JOB)
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=model), cfg.model_dir, max_to_keep=1
        )
        prefix = manager.save(checkpoint_number=0)
    finally:
        run_dir.close()
    log.info(
        "converted %s (ResNet-%d, width %g, SK %g, SE %g, %d projection layers, %s) to %s",
        resolved.prefix,
        converted.resnet_depth,
        converted.width_multiplier,
        converted.sk_ratio,
        converted.se_ratio,
        converted.num_proj_layers if converted.proj_head_mode != "none" else 0,
        f"a {extra['num_classes']}-class head" if extra["num_classes"] else "no linear head",
        prefix,
    )
    print(f"checkpoint={prefix}")
    return prefix
