"""A tfssl SavedModel speaks the official SimCLR TF2 convention: `model(images, trainable=...)`
with the official output names, so the official README's fine-tuning snippet runs against it."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.conftest import REPO
from tfssl import jobs
from tfssl.config import Config

R18 = os.path.join(REPO, "tests", "data", "official_simclr_tf2", "r18_pretrain")
OFFICIAL_NAMES = {f"block_group{i}" for i in range(1, 5)} | {
    "initial_max_pool",
    "final_avg_pool",
    "proj_head_input",
    "proj_head_output",
    "logits_sup",
}

# tf2/README.md "Finetuning the linear head (linear eval)", as written there, with its
# placeholders (the optimizer, num_classes, build_dataset, num_steps) filled in. TensorFlow only.
SNIPPET = """
import json, sys
import numpy as np
import tensorflow as tf

path, images_file, out_file = sys.argv[1:4]
images = np.load(images_file)
num_classes = 4
num_steps = 8
def build_dataset():
  labels = np.arange(len(images)) % num_classes
  return tf.data.Dataset.from_tensor_slices({'image': images, 'label': labels}).batch(8).repeat()

class Model(tf.keras.Model):
  def __init__(self, path):
    super(Model, self).__init__()
    # Load a pretrained SimCLR model.
    self.saved_model = tf.saved_model.load(path)
    # Linear head.
    self.dense_layer = tf.keras.layers.Dense(units=num_classes,
        name="head_supervised_new")
    self.optimizer = tf.keras.optimizers.SGD(learning_rate=0.5)

  def call(self, x):
    with tf.GradientTape() as tape:
      # Use `trainable=False` since we do not wish to update batch norm
      # statistics of the loaded model. If finetuning everything, set this to
      # True.
      outputs = self.saved_model(x['image'], trainable=False)
      logits_t = self.dense_layer(outputs['final_avg_pool'])
      loss_t = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
        labels = tf.one_hot(x['label'], num_classes), logits=logits_t))
      dense_layer_weights = self.dense_layer.trainable_weights
      print('Variables to train:', dense_layer_weights)
      # Note: We only compute gradients wrt the linear head. To finetune all
      # weights use self.trainable_weights instead.
      grads = tape.gradient(loss_t, dense_layer_weights)
      self.optimizer.apply_gradients(zip(grads, dense_layer_weights))
    return loss_t, x["image"], logits_t, x["label"]

model = Model(path)

# Use tf.function to speed up training. Remove this when debugging intermediate
# model activations.
@tf.function
def train_step(x):
  return model(x)

ds = build_dataset()
iterator = iter(ds)
exported = model.saved_model
before = [v.numpy().copy() for v in exported.trainable_variables + exported.non_trainable_variables]
losses = []
for _ in range(num_steps):
  losses.append(float(train_step(next(iterator))[0]))
after = [v.numpy() for v in exported.trainable_variables + exported.non_trainable_variables]
eval_outputs = exported(tf.constant(images[:2]), trainable=False)
train_outputs = exported(tf.constant(images[:2]), trainable=True)
json.dump({'losses': losses,
           'unchanged': all(np.array_equal(a, b) for a, b in zip(before, after)),
           'names': sorted(eval_outputs), 'train_names': sorted(train_outputs),
           'outputs': {k: v.numpy().tolist() for k, v in eval_outputs.items()},
           'tfssl_imported': 'tfssl' in sys.modules}, open(out_file, 'w'))
"""


def test_official_fine_tuning_snippet_runs_on_a_tfssl_export(tmp_path):
    """The official r18 checkpoint, converted and exported by tfssl, answers the official call in a
    process without tfssl with the official SavedModel's numbers; the snippet's linear head learns
    while the export's own variables (batch-norm statistics included) stay as they were."""
    run_dir, export_dir = str(tmp_path / "converted"), str(tmp_path / "exported")
    jobs.run(Config.for_job(dict(mode="convert_checkpoint", checkpoint=R18, model_dir=run_dir)))
    jobs.run(
        Config.for_job(
            dict(
                mode="export",
                checkpoint=run_dir,
                export_dir=export_dir,
                dataset="synthetic:32x32x3",
            )
        )
    )
    recorded = np.load(os.path.join(R18, "outputs.npz"))
    images = np.concatenate(
        [recorded["images"], np.random.default_rng(0).uniform(0, 1, (6, 32, 32, 3))]
    ).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "snippet.py").write_text(SNIPPET)
    subprocess.run(
        [
            sys.executable,
            str(tmp_path / "snippet.py"),
            export_dir,
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.json"),
        ],
        check=True,
        cwd=str(tmp_path),
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
    )
    out = json.load(open(tmp_path / "out.json"))
    assert not out["tfssl_imported"]
    assert set(out["names"]) == set(out["train_names"]) == OFFICIAL_NAMES
    for name in OFFICIAL_NAMES:
        np.testing.assert_allclose(out["outputs"][name], recorded[name], atol=1e-5, err_msg=name)
    assert out["unchanged"]
    assert out["losses"][-1] < out["losses"][0]
