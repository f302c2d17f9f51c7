"""The semi-supervised VAE (Kingma, Rezende, Mohamed & Welling 2014): M1, M2 and M1+M2.

--ssvae_model=m1    a VAE on all train images (no labels, no classifier); it exports q(z|x).
--ssvae_model=m2    q(y|x), q(z|x,y), p(x|y,z) on images. Each step draws a labeled batch
                    (--train_batch_size) and an unlabeled batch (--unlabeled_batch_size) and
                    minimises J^alpha / N (tfssl/losses/elbo.py: semi_supervised_loss):
                    (N_l/N) mean_l L(x,y) + (N_u/N) mean_u U(x) + ssvae_alpha * mean_l[-log q(y|x)]
                    i.e. the paper's alpha = ssvae_alpha * N (0.1 N in the paper).
--ssvae_model=m1m2  M2 on the latent codes of a trained, frozen M1 (--m1_checkpoint): samples of
                    q(z1|x) or its means (--m1_latent). M2 reads only M1's active units (std of the
                    mean over the train images > 0.1, as in the authors' code); they are found once
                    and kept with M1's architecture in the run's M1_CONFIG_FILE.
                    M1's q(z1|x) of every train image is computed once before training, as the
                    authors' code did, so a training step runs M2 alone.
--ssvae_labels_only trains only q(y|x) with cross-entropy on the labeled subset (for m2 or m1m2),
                    the supervised baseline on the same network and labels.

With the Bernoulli likelihood the encoders read the grey-level image and the likelihood scores a
fresh binarisation of it (x_d ~ Bernoulli(pixel_d)), as the authors' code did for MNIST.
The evaluated and exported classifier is q(y|x) (through M1's encoder, at its mean, for M1+M2).
At the end of training the analogy figure (M2) or samples (M1) are written to the model_dir.
"""

import logging
import os

import numpy as np
import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.losses import elbo
from tfssl.losses.supervised import accuracy, cross_entropy
from tfssl.methods.base import Method
from tfssl.models.factory import build_by_calling
from tfssl.models.vae import M1M2, M2, VAE
from tfssl.train.checkpoints import resolve_checkpoint, restore_into, run_config
from tfssl.train.rundir import read_json, write_json

log = logging.getLogger("tfssl")

# The authors' MNIST sizes; their 100-label M1+M2 run used 300, which measured 4.15% here against
# 3.97% with 500 (BENCHMARKS.md).
PAPER_HIDDEN_SIZES = {"m1": [500, 500], "m2": [500], "m1m2": [500]}
M1_CONFIG_FILE = (
    "m1_config.json"  # M1's architecture and active units, kept in an M1+M2 run for eval and export
)
ACTIVE_UNIT_STD = 0.1
ACTIVE_UNIT_IMAGES = 10000
FIGURE_FILE = "ssvae_analogies.png"
SAMPLES_FILE = "ssvae_samples.png"
FIGURE_COLUMNS = 10


def vae_config(cfg, image_shape):
    """M1's constructor arguments from a run config."""
    return dict(
        data_shape=list(image_shape),
        latent_dim=cfg.ssvae_latent_dim,
        hidden_sizes=hidden_sizes(cfg, "m1"),
        activation=cfg.ssvae_activation,
        likelihood=cfg.ssvae_likelihood,
    )


def hidden_sizes(cfg, model):
    sizes = [int(size) for size in cfg.float_list("ssvae_hidden_sizes")]
    return sizes or PAPER_HIDDEN_SIZES[model]


class SSVAE(Method):
    job = "ssvae"
    progress_metrics = ("loss", "elbo", "unlabeled_acc", "supervised_acc")
    architectures = ("auto", "mlp")
    # train_batch_size is the labeled batch (M1: the only one), unlabeled_batch_size the unlabeled
    # one; an epoch is one pass over the unlabeled images (M1: all images).
    defaults = dict(
        optimizer="adam",
        learning_rate=1e-3,
        learning_rate_scaling="constant",
        lr_schedule="constant",
        weight_decay=0.0,
        warmup_epochs=0.0,
        train_batch_size=100,
        unlabeled_batch_size=100,
        architecture="mlp",
        train_epochs=50,
        checkpoint_epochs=5,
    )

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.ssvae_model == "m1m2" and not cfg.m1_checkpoint:
            raise ConfigError(
                "--ssvae_model=m1m2 needs --m1_checkpoint=<model_dir of an --ssvae_model=m1 run>"
            )

    @property
    def kind(self):
        return self.cfg.ssvae_model

    @property
    def labels_only(self):
        return self.kind != "m1" and self.cfg.ssvae_labels_only

    @property
    def uses_label_subset(self):
        return self.kind != "m1"

    @property
    def uses_unlabeled(self):
        return not (self.kind == "m1" or self.labels_only)

    @property
    def examples_per_epoch(self):
        """An epoch is one pass over the images of the main stream (all, unlabeled, or the labels
        alone); scaled so that train_epochs * examples_per_epoch / train_batch_size counts steps."""
        if self.kind == "m1":
            return self.data.num_examples("all")
        if self.labels_only:
            return self.data.num_examples("labeled")
        return (
            self.data.num_examples(self.unlabeled_part)
            * self.cfg.train_batch_size
            / self.unlabeled_batch_size
        )

    # --- networks ---
    def build(self):
        cfg, shape = self.cfg, self.data.image_shape
        num_classes = self.data.info.num_classes
        m2_config = dict(
            num_classes=num_classes,
            latent_dim=cfg.ssvae_latent_dim,
            hidden_sizes=hidden_sizes(cfg, self.kind),
            activation=cfg.ssvae_activation,
        )
        if self.kind == "m1":
            self.model = build_by_calling(VAE(**vae_config(cfg, shape), name="m1"), shape)
        elif self.kind == "m2":
            model = M2(
                input_dim=int(np.prod(shape)),
                likelihood=cfg.ssvae_likelihood,
                **m2_config,
                name="m2",
            )
            self.model = build_by_calling(model, shape)
        else:
            m1_config, active_units = self.m1_setup()
            m2_config.update(likelihood="gaussian")
            self.model = build_by_calling(
                M1M2(m1_config, m2_config, active_units, name="m1m2"), shape
            )

    def m1_setup(self):
        """(M1's architecture, the latent units M2 reads) of an M1+M2 run: from the run directory,
        else from --m1_checkpoint (its flags, and its active units found on the train images)."""
        saved = os.path.join(self.data.run_dir, M1_CONFIG_FILE)
        if os.path.exists(saved):
            setup = read_json(saved)
            if "active_units" not in setup:
                raise ConfigError(
                    f"{self.data.run_dir} is an M1+M2 run of an older tfssl, whose M2 masked M1's "
                    "inactive units; evaluate it with that version, or train it again"
                )
            return setup["m1"], setup["active_units"]
        resolved = resolve_checkpoint(self.cfg.m1_checkpoint, "--m1_checkpoint")
        m1_cfg, job = run_config(resolved.run_dir, "--m1_checkpoint")
        if job != "ssvae" or m1_cfg.ssvae_model != "m1":
            raise ConfigError(
                f"--m1_checkpoint={self.cfg.m1_checkpoint} holds a {job} run "
                f"({m1_cfg.ssvae_model if job == 'ssvae' else ''}), not --ssvae_model=m1"
            )
        config = vae_config(m1_cfg, self.data.image_shape)
        m1 = build_by_calling(VAE(**config), self.data.image_shape)
        restore_into({"model": m1}, resolved.prefix, "M1 checkpoint")
        active_units = self.active_units(m1)
        log.info(
            "M1 %s: %d of %d latent units active", resolved.prefix, len(active_units), m1.latent_dim
        )
        os.makedirs(self.data.run_dir, exist_ok=True)
        write_json(saved, {"m1": config, "active_units": active_units})
        return config, active_units

    def active_units(self, m1):
        """Indices of M1's latent units whose mean varies over the first train images
        (std > ACTIVE_UNIT_STD)."""
        means = [
            m1.encode(images)[0]
            for images, _ in self.data.eval_batches(
                self.eval_view, 500, self.cfg.train_split, ACTIVE_UNIT_IMAGES // 500
            )
        ]
        active = np.flatnonzero(np.std(np.concatenate(means), axis=0) > ACTIVE_UNIT_STD)
        if not active.size:
            log.warning(
                "M1 has no active latent unit (std > %g); M2 reads all of them", ACTIVE_UNIT_STD
            )
            return list(range(m1.latent_dim))
        return active.tolist()

    def initialize(self):
        """M1+M2, fresh start: M1's weights from --m1_checkpoint."""
        if self.kind == "m1m2":
            resolved = resolve_checkpoint(self.cfg.m1_checkpoint, "--m1_checkpoint")
            restore_into({"model": self.model.m1}, resolved.prefix, "M1 checkpoint")

    def setup_training(self):
        """M1+M2: M1's codes of the train split, once (M1 is frozen and its inputs are not
        augmented)."""
        self.m1_codes = self.compute_m1_codes(self.cfg.train_split) if self.kind == "m1m2" else None

    def compute_m1_codes(self, split, batch_size=1000):
        """[mean, log variance] of M1's q(z1|x) over its active units for every image of a split, in
        split order: (N, 2 * active units)."""
        encode = tf.function(lambda images: tf.concat(self.model.codes(images), axis=-1))
        codes = [
            encode(images).numpy()
            for images, _ in self.data.eval_batches(self.eval_view, batch_size, split)
        ]
        return np.concatenate(codes).astype(np.float32)

    def trainable_variables(self):
        return (
            self.model.m2.trainable_variables
            if self.kind == "m1m2"
            else self.model.trainable_variables
        )

    @property
    def m2(self):
        return self.model.m2 if self.kind == "m1m2" else self.model

    # --- data ---
    def view(self, example, seed):
        """A training example: the image, or for M1+M2 its row of M1 codes, unchanged."""
        return example if self.kind == "m1m2" else self.eval_view(example)

    def train_dataset(self, input_context, start_step):
        cfg, data = self.cfg, self.data
        if self.kind == "m1":
            return data.train_batches(
                self.view, cfg.train_batch_size, "all", input_context, start_step
            )
        labeled = data.train_batches(
            self.view,
            cfg.train_batch_size,
            "labeled",
            input_context,
            start_step,
            features=self.m1_codes,
        )
        if self.labels_only:
            return labeled
        unlabeled = data.train_batches(
            self.view,
            self.unlabeled_batch_size,
            self.unlabeled_part,
            input_context,
            start_step,
            stream=1,
            features=self.m1_codes,
        )
        return tf.data.Dataset.zip(labeled, unlabeled)

    def summary_images(self, batch):
        if self.kind == "m1m2":
            return None  # its batches hold M1 codes
        return (batch if self.kind == "m1" or self.labels_only else batch[0])[0][:8]

    def inputs(self, images, training=True, seed=None):
        """(what the encoders read, what the likelihood scores) for a batch of images.

        Pixels: the flat image, and with the Bernoulli likelihood a binarisation of it (random in
        training, seeded in evaluation). M1+M2: M1's latent code over its active units (a sample or
        the mean) for both; its training batches hold M1's codes (compute_m1_codes) instead of
        images."""
        flat = tf.reshape(tf.cast(images, tf.float32), [tf.shape(images)[0], -1])
        if self.kind == "m1m2":
            mean, log_var = tf.split(flat, 2, axis=-1) if training else self.model.codes(images)
            if training and self.cfg.m1_latent == "sample":
                mean = elbo.reparameterize(mean, log_var, tf.random.normal(tf.shape(mean)))
            return tf.stop_gradient(mean), tf.stop_gradient(mean)
        if self.cfg.ssvae_likelihood != "bernoulli":
            return flat, flat
        noise = (
            tf.random.uniform(tf.shape(flat))
            if seed is None
            else tf.random.stateless_uniform(tf.shape(flat), seed)
        )
        return flat, tf.cast(noise < flat, tf.float32)

    def _noise(self, shape, seed=None):
        return tf.random.normal(shape) if seed is None else tf.random.stateless_normal(shape, seed)

    # --- losses ---
    def loss(self, batch):
        if self.kind == "m1":
            return self._m1_loss(*batch)
        if self.labels_only:
            return self._labels_only_loss(*batch)
        return self._m2_loss(*batch)

    def _m1_loss(self, images, _):
        x, target = self.inputs(images)
        terms = self.model.bound(x, target, self._noise([tf.shape(x)[0], self.model.latent_dim]))
        kl_weight = elbo.kl_warmup_weight(self.step, self.kl_warmup_steps)
        loss = -tf.reduce_mean(terms["log_px"] - kl_weight * terms["kl"])
        return loss, {
            "elbo": tf.reduce_mean(terms["bound"]),
            "log_px": tf.reduce_mean(terms["log_px"]),
            "kl": tf.reduce_mean(terms["kl"]),
            "kl_weight": kl_weight,
        }

    @property
    def kl_warmup_steps(self):
        """--ssvae_kl_warmup_epochs in steps (M1)."""
        return int(
            round(
                self.cfg.ssvae_kl_warmup_epochs
                * self.examples_per_epoch
                / self.cfg.train_batch_size
            )
        )

    def _labels_only_loss(self, images, labels):
        x, _ = self.inputs(images)
        logits = self.m2.classify(x)
        loss = cross_entropy(labels, logits, self.class_weights)
        return loss, {"classification_loss": loss, "supervised_acc": accuracy(labels, logits)}

    def _m2_loss(self, labeled, unlabeled):
        m2, cfg = self.m2, self.cfg
        (labeled_images, labels), (unlabeled_images, hidden_labels) = labeled, unlabeled
        x_l, target_l = self.inputs(labeled_images)
        x_u, target_u = self.inputs(unlabeled_images)
        labels = tf.cast(labels, tf.int32)
        lab = m2.labeled_bound(
            x_l, target_l, labels, self._noise([tf.shape(x_l)[0], m2.latent_dim])
        )
        unl = m2.unlabeled_bound(
            x_u, target_u, self._noise([m2.num_classes, tf.shape(x_u)[0], m2.latent_dim])
        )
        logits_l = m2.classify(x_l)
        class_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits_l)
        if self.class_weights is not None:  # --class_weight: each example's term times w[y]
            class_nll *= tf.gather(tf.constant(self.class_weights), labels)
        loss = elbo.semi_supervised_loss(
            lab["bound"],
            unl["bound"],
            class_nll,
            self.data.num_examples("labeled"),
            self.data.num_examples(self.unlabeled_part),
            cfg.ssvae_alpha,
        )
        q = tf.nn.softmax(unl["logits"])
        return loss, {
            "elbo": tf.reduce_mean(unl["bound"]),
            "labeled_elbo": tf.reduce_mean(lab["bound"]),
            "labeled_log_px": tf.reduce_mean(lab["log_px"]),
            "labeled_kl": tf.reduce_mean(lab["kl"]),
            "classification_loss": tf.reduce_mean(class_nll),
            "supervised_acc": accuracy(labels, logits_l),
            "unlabeled_acc": accuracy(hidden_labels, unl["logits"]),
            "unlabeled_entropy": tf.reduce_mean(-tf.reduce_sum(q * tf.math.log(q + 1e-12), -1)),
        }

    # --- evaluation, figures and export ---
    def has_classifier(self):
        return self.kind != "m1"

    def eval_logits(self, images):
        if self.kind == "m1":
            raise ConfigError(
                "an --ssvae_model=m1 run has no classifier; evaluate an m2 or m1m2 run"
            )
        return self.model(images, training=False)["logits"]

    def export_outputs(self, images, training=False):
        """M2 and M1+M2: logits of q(y|x), z_mean (and M1's code for M1+M2); M1: z_mean,
        z_log_var."""
        return dict(self.model(images, training=training))

    def extra_eval_metrics(self, split, batch_size, max_batches=0):
        """The bound on the eval split ("elbo", nats per example; for M1+M2 over M1's codes at their
        means), with seeded noise."""
        total, count = 0.0, 0
        for index, (images, _) in enumerate(
            self.data.eval_batches(self.eval_view, batch_size, split, max_batches)
        ):
            seeds = tf.random.experimental.stateless_split([self.cfg.seed, index], 2)
            x, target = self.inputs(images, training=False, seed=seeds[0])
            size = tf.shape(x)[0]
            if self.kind == "m1":
                bound = self.model.bound(
                    x, target, self._noise([size, self.model.latent_dim], seeds[1])
                )["bound"]
            else:
                noise = self._noise([self.m2.num_classes, size, self.m2.latent_dim], seeds[1])
                bound = self.m2.unlabeled_bound(x, target, noise)["bound"]
            total += float(tf.reduce_sum(bound))
            count += int(size)
        return {"elbo": total / max(count, 1)}

    def write_figures(self):
        self.write_figure(self.cfg.eval_split)

    def write_figure(self, split):
        """M2 / M1+M2: the analogy figure (FIGURE_FILE); M1: samples from the prior
        (SAMPLES_FILE)."""
        from tfssl import plots_vae

        shape = self.data.image_shape
        if self.kind == "m1":
            z = tf.random.stateless_normal(
                [2 * FIGURE_COLUMNS, self.model.latent_dim], [self.cfg.seed, 1]
            )
            images = tf.reshape(self.model.decode_mean(z), [-1, *shape]).numpy()
            return plots_vae.save_sample_grid(os.path.join(self.data.run_dir, SAMPLES_FILE), images)
        images, _ = next(iter(self.data.eval_batches(self.eval_view, FIGURE_COLUMNS, split, 1)))
        x, _ = self.inputs(images, training=False)
        z = self.m2(x)["z_mean"]  # the style of each source image, under its predicted class
        num_classes = self.m2.num_classes
        rows = []
        for y in range(num_classes):
            y_onehot = tf.one_hot(tf.fill([tf.shape(z)[0]], y), num_classes)
            mean = self.m2.decode_mean(y_onehot, z)
            if self.kind == "m1m2":  # M2 generates M1 codes; M1's decoder turns them into images
                mean = self.model.m1.decode_mean(self.model.full_code(mean))
            rows.append(tf.reshape(mean, [-1, *shape]).numpy())
        return plots_vae.save_analogy_figure(
            os.path.join(self.data.run_dir, FIGURE_FILE),
            images.numpy(),
            np.stack(rows),
            self.data.info.class_names,
        )
