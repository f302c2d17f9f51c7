"""SavedModel export that TensorFlow alone can load, serve and fine-tune, plus a .keras file.

Endpoints of the SavedModel (no tfssl import needed to use them):
  serve(images)            uint8 (B, H, W, C) of any H and W -> {"probabilities", "logits",
                           features...}; resizing and scaling happen inside. Also the
                           'serving_default' signature.
  call_inference(images)   float32 in [0, 1] at the trained size -> the same outputs, batch norm
                           frozen
  call_training(images)    the same with batch norm in training mode, for fine-tuning the export
  model(images, trainable=False|True)
                           the official SimCLR TF2 convention: float32 in [0, 1] of any size ->
                           the official output names (block_group1..4, initial_max_pool,
                           final_avg_pool, proj_head_input, proj_head_output, logits_sup), so
                           code written for the official exports runs unchanged
and the variable lists `trainable_variables` and `non_trainable_variables`.
"""

import logging
import os

import keras
import tensorflow as tf

from tfssl import restore
from tfssl.data import augment

log = logging.getLogger("tfssl")


def _float_outputs(outputs):
    outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
    if "logits" in outputs and "probabilities" not in outputs:  # SS-VAE M1: features only
        outputs["probabilities"] = tf.nn.softmax(outputs["logits"])
    return outputs


#: tfssl's output names that the official exports call otherwise.
OFFICIAL_NAMES = {"logits": "logits_sup"}


def official_outputs(outputs):
    """The outputs under the official names (no probabilities: the official exports have none)."""
    return {OFFICIAL_NAMES.get(k, k): tf.cast(v, tf.float32) for k, v in outputs.items()}


def _official_call(method, size, channels):
    """The official exports' __call__(images, trainable): `trainable` is a Python bool, one
    concrete function each. Images of any size, or of the trained size for networks that take
    only that (MLPs)."""
    for shape in ([None, None, None, channels], [None, size, size, channels]):
        call = tf.function(
            lambda images, trainable: official_outputs(
                method.export_outputs(images, training=trainable)
            ),
            autograph=False,
        )
        try:
            for trainable in (False, True):
                call.get_concrete_function(tf.TensorSpec(shape, tf.float32), trainable=trainable)
        except (ValueError, TypeError):
            continue
        return call
    raise ValueError(f"{type(method).__name__} cannot be called on [N, {size}, {size}] images")


def export_saved_model(method, export_dir):
    """Writes method's evaluated network as a SavedModel in export_dir; returns export_dir."""
    size, channels = method.data.image_size, method.data.info.channels
    archive = keras.export.ExportArchive()
    for name, trackable in method.checkpoint_items().items():
        archive.track(trackable)

    def serve(images):
        images = tf.image.convert_image_dtype(images, tf.float32)
        return _float_outputs(
            method.export_outputs(augment.eval_view(images, size), training=False)
        )

    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8)]
    )
    float_images = [tf.TensorSpec([None, size, size, channels], tf.float32)]
    archive.add_endpoint(
        "call_inference",
        lambda x: _float_outputs(method.export_outputs(x, training=False)),
        input_signature=float_images,
    )
    archive.add_endpoint(
        "call_training",
        lambda x: _float_outputs(method.export_outputs(x, training=True)),
        input_signature=float_images,
    )
    archive.add_endpoint("__call__", _official_call(method, size, channels))
    variables = method.export_variables()
    archive.add_variable_collection("trainable_variables", [v for v in variables if v.trainable])
    archive.add_variable_collection(
        "non_trainable_variables", [v for v in variables if not v.trainable]
    )
    archive.write_out(export_dir, verbose=False)
    return export_dir


def export_run(cfg):
    """--mode=export: restores --checkpoint (any stage or method) and writes the SavedModel and a
    .keras file."""
    path = cfg.checkpoint or cfg.model_dir
    if cfg.precision == "auto":  # a SavedModel for any machine: float32 unless asked otherwise
        cfg = cfg.replace(precision="float32")
    method, _, resolved, _ = restore.load_trained(path, cfg)
    export_dir = cfg.export_dir or os.path.join(resolved.run_dir, "saved_model")
    export_saved_model(method, export_dir)
    keras_path = os.path.join(
        os.path.dirname(os.path.abspath(export_dir)),
        os.path.basename(os.path.normpath(export_dir)) + ".keras",
    )
    method.model.save(keras_path)
    log.info("exported %s to %s (SavedModel) and %s", resolved.prefix, export_dir, keras_path)
    print(f"saved_model={export_dir} keras={keras_path}")
    return export_dir
