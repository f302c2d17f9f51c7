"""What a training method defines. Everything else (strategy, optimizer, loop,
checkpoints, summaries, progress, eval and results) belongs to the shared trainer."""

import functools

import tensorflow as tf

from tfssl.data import augment
from tfssl.errors import ConfigError


class Method:
    """Base class: a method builds its networks and says how one replica computes its loss.

    Before anything runs, validate_config(cfg) rejects flags the method cannot train with, and
    `defaults` fills the flags the user did not give (Config.for_job).

    Lifecycle, all driven by the trainer:
      build()                  inside strategy.scope(); creates self.model (the network that
                               is evaluated and exported) and anything else it trains
      initialize()             only on a fresh start (no checkpoint in model_dir yet), e.g.
                               restore pretrained weights
      setup_training()         before training, fresh or resumed (e.g. load a frozen teacher)
      train_dataset(ctx, step) per-replica batches, resuming at `step`
      loss(batch)              in replica context under a GradientTape: (loss, {metric: value}),
                               the loss averaged over this replica's examples
      adjust_gradients(...)    in replica context, before the optimizer step (e.g. SimSiam's
                               fixed predictor rate)
      after_update()           in cross-replica context after each optimizer step (e.g. an EMA:
                               assigning a mirrored variable there updates every replica's copy)
    """

    #: The job name (the --mode that runs it).
    job = ""
    #: Metrics reported by loss() that belong in the progress line (the rest go to TensorBoard).
    progress_metrics = ("loss",)
    #: Whether the method trains on the labeled subset (--label_fraction / --num_labels).
    uses_label_subset = True
    #: Its flag defaults where they differ from Config's (a flag the user gives wins).
    defaults = {}
    #: The --architecture values it builds ("auto": its usual network).
    architectures = ("auto", "resnet")
    #: Whether the k-NN monitor (tfssl/train/knn.py) runs while it trains.
    knn_monitor = False

    @classmethod
    def make_data(cls, cfg, run_dir):
        """The method's data (its self.data): images with one label each, by default."""
        from tfssl.data.pipeline import DataBundle

        return DataBundle(cfg, run_dir)

    #: Whether it trains on --positive_pairs=same_group pairs (tfssl/data/groups.py).
    pairs_from_groups = False

    @classmethod
    def validate_config(cls, cfg):
        """Raises ConfigError naming the first flag this method cannot train with and the fix.
        Subclasses add their own checks to these."""
        if not (cfg.train_steps or cfg.train_epochs):
            raise ConfigError("--train_steps and --train_epochs are both 0: set one of them")
        if cfg.architecture not in cls.architectures:
            built = " or ".join(a for a in cls.architectures if a != "auto")
            raise ConfigError(
                f"--mode={cfg.job} builds {built}, not --architecture={cfg.architecture}"
            )
        if cfg.architecture == "vit" and (cfg.vit_width % 4 or cfg.vit_width % cfg.vit_num_heads):
            raise ConfigError(
                f"--vit_width={cfg.vit_width} must be a multiple of 4 and of "
                f"--vit_num_heads={cfg.vit_num_heads}"
            )
        if cfg.positive_pairs != "augment" and not cls.pairs_from_groups:
            what = f"--mode={cfg.job}"
            if cfg.job == "pretrain":
                what = f"--ssl_method={cfg.ssl_method}"
            raise ConfigError(
                f"--positive_pairs={cfg.positive_pairs} is for contrastive pretraining "
                f"(--mode=pretrain --ssl_method=simclr); {what} takes no positive pairs"
            )

    def __init__(self, cfg, data, num_replicas=1):
        self.cfg = cfg
        self.data = data
        self.num_replicas = num_replicas
        self.model = None
        #: The trainer's step counter (a tf.Variable, 0 at the first step), for ramp-ups in loss().
        self.step = None

    @property
    def examples_per_epoch(self):
        return self.data.num_examples("all")

    @functools.cached_property
    def class_weights(self):
        """--class_weight's per-class weights of the supervised cross-entropy (None for 'none'),
        over the labels it trains on: the labeled subset, or the whole train split."""
        return self.data.class_weights("labeled" if self.uses_label_subset else "all")

    @property
    def unlabeled_batch_size(self):
        """Unlabeled images per step of two-stream methods: --unlabeled_batch_size, else the labeled
        size."""
        return self.cfg.unlabeled_batch_size or self.cfg.train_batch_size

    @property
    def uses_unlabeled(self):
        """Whether each step also reads an unlabeled batch of unlabeled_batch_size images."""
        return False

    @property
    def unlabeled_part(self):
        """The part of the train split that unlabeled batches come from: every image with
        --unlabeled_includes_labeled (or when all are labeled), else the images without labels."""
        everything = self.cfg.unlabeled_includes_labeled or not self.data.num_examples("unlabeled")
        return "all" if everything else "unlabeled"

    def two_stream_batches(self, labeled_view, unlabeled_view, input_context, start_step):
        """(labeled,) batches, or (labeled, unlabeled) ones when uses_unlabeled: the labeled part
        (stream 1) through labeled_view, unlabeled_part (stream 0) through unlabeled_view."""
        labeled = self.data.train_batches(
            labeled_view, self.cfg.train_batch_size, "labeled", input_context, start_step, stream=1
        )
        if not self.uses_unlabeled:
            return tf.data.Dataset.zip((labeled,))
        unlabeled = self.data.train_batches(
            unlabeled_view,
            self.unlabeled_batch_size,
            self.unlabeled_part,
            input_context,
            start_step,
            stream=0,
        )
        return tf.data.Dataset.zip((labeled, unlabeled))

    @property
    def images_per_step(self):
        """Training images one step reads, over all its streams (for the progress line's img/s)."""
        return self.cfg.train_batch_size + (self.unlabeled_batch_size if self.uses_unlabeled else 0)

    def build(self):
        raise NotImplementedError

    def initialize(self):
        """Called on a fresh start, after build(), before training."""

    def setup_training(self):
        """Called inside the strategy scope before training (fresh or resumed), e.g. to load a
        teacher."""

    def learning_rate_schedule(self, peak, warmup_steps, total_steps):
        """The learning rate: a float or a keras LearningRateSchedule (default from
        --lr_schedule)."""
        from tfssl.train.optim import SCHEDULES

        schedule = SCHEDULES.get(self.cfg.lr_schedule)
        return schedule(peak, warmup_steps, total_steps) if schedule else peak

    def trainable_variables(self):
        return self.model.trainable_variables

    def checkpoint_items(self):
        """Named trackables saved in every checkpoint (the optimizer and step are added by the
        trainer)."""
        return {"model": self.model}

    def train_dataset(self, input_context, start_step):
        raise NotImplementedError

    def loss(self, batch):
        raise NotImplementedError

    def adjust_gradients(self, grads_and_vars, learning_rate):
        """This replica's (gradient, variable) pairs before the optimizer applies them at
        `learning_rate` (e.g. SimSiam's fixed predictor rate); unchanged by default."""
        return grads_and_vars

    @tf.autograph.experimental.do_not_convert
    def after_update(self):
        """After each optimizer step, in cross-replica context (inside the train tf.function)."""

    def at_checkpoint(self, step):
        """On the host, every --checkpoint_epochs (or _steps) and at the last step, before the
        checkpoint is written (e.g. early stopping: score a validation split, and put the best
        weights back into the model when training ends)."""

    def stopped_early(self):
        """True once training should end before its last step (read before every train loop, so
        a resumed run that had stopped stays stopped)."""
        return False

    def batch_norm_networks(self):
        """Networks whose batch-norm statistics --bn_recalibration_batches re-estimates after
        training."""
        return [self.model]

    def summary_images(self, batch):
        """Images (N, H, W, C) in [0, 1] from a training batch for TensorBoard, or None."""
        return None

    def crop_flip_view(self, image, seed):
        """Fine-tuning's augmentation: a random resized crop (--crop_min_area) and --use_flip."""
        cfg = self.cfg
        return augment.finetune_view(
            image, self.data.image_size, seed, cfg.crop_min_area, cfg.use_flip
        )

    # --- evaluation and export ---
    def eval_view(self, image):
        return augment.eval_view(image, self.data.image_size)

    def has_classifier(self):
        return True

    def extra_eval_metrics(self, split, batch_size, max_batches=0):
        """More eval figures for the result JSON (e.g. Mean Teacher's student), {name: value}."""
        return {}

    def write_figures(self):
        """Figures written into the run directory at the end of training (chief only)."""

    def compiled_eval_logits(self):
        """eval_logits as one tf.function per method (traced once per input shape). No autograph:
        the calls need none, and autograph rereads the source file, which fails if it was edited
        during a run."""
        if getattr(self, "_compiled_eval_logits", None) is None:
            self._compiled_eval_logits = tf.function(
                self.eval_logits, reduce_retracing=True, autograph=False
            )
        return self._compiled_eval_logits

    def frozen_features(self, images):
        """The encoder's features (final_avg_pool) in inference mode, for the k-NN classifier, or
        None for a network without a ResNet encoder."""
        encoder = getattr(self.model, "encoder", None)
        return None if encoder is None else encoder(images, training=False)

    def eval_logits(self, images):
        """Class logits of the evaluated network (e.g. Mean Teacher's teacher)."""
        return self.model(images, training=False)["logits"]

    def export_outputs(self, images, training=False):
        """Named outputs of the exported network: 'logits' plus the official SimCLR feature names
        (block_group1..4, final_avg_pool, proj_head_input, proj_head_output)."""
        outputs = self.model(images, training=training, return_endpoints=True)
        return {k: v for k, v in outputs.items() if k not in ("hiddens", "projection")}

    def export_variables(self):
        """Variables of the exported network (trainable ones are fine-tuned after loading)."""
        return self.model.variables
