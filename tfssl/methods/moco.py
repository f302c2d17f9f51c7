"""MoCo v2 (He et al. 2020; Chen et al. 2020): a query encoder learns to pick its key (the other
view, through a momentum key encoder) out of a queue of keys of earlier batches.

Each step encodes the first view with the query network (encoder -> projection head) and the
second with the key network (its EMA, --moco_momentum 0.999, no gradient), and minimises InfoNCE
at --temperature (0.2) against the --queue_size negatives of the queue (tfssl/losses/siamese.py:
moco_infonce). The keys of every replica are gathered, in global batch order, and enqueued
(ring buffer, oldest first out) after the loss has read the queue.

Shuffled BN (--shuffle_bn, the default): the key network sees the global batch in a random order,
so a query and its key are normalised with the statistics of different images and the network
cannot find its positive through them. As in MoCo's CIFAR demo, each replica's batch is also split
into --bn_splits groups with their own statistics, for queries and keys alike, which keeps the
trick alive on one device; the keys are put back in order afterwards. Synchronised BN
(--global_bn with --noshuffle_bn) is the paper's alternative.

The query network is the checkpoint item `model`, as SimCLR's, so fine-tuning, distillation,
eval and export take a MoCo run as they take a SimCLR run. The optimizer is MoCo v2's (SGD with
momentum, weight decay 1e-4, cosine decay) at solo-learn's CIFAR rate, 0.3 per 256 images, with
tfssl's short warmup: the paper's 0.03 is for 200 ImageNet epochs of 5000 steps each, and the
defaults are for a few epochs of small images.
"""

import logging

import tensorflow as tf

from tfssl.errors import ConfigError
from tfssl.losses.contrastive import gather_across_replicas
from tfssl.losses.siamese import default_queue_size, enqueue, moco_infonce
from tfssl.methods.siamese import SiamesePretrain

log = logging.getLogger("tfssl")
BN_GROUP_SIZE = 32  # images per batch-norm group when --bn_splits is 0
MAX_BN_SPLITS = 8


def auto_bn_splits(per_replica_batch):
    """The most groups, up to 8, that split the batch evenly into groups of at least 32."""
    fitting = [
        s
        for s in range(1, MAX_BN_SPLITS + 1)
        if per_replica_batch % s == 0 and per_replica_batch // s >= BN_GROUP_SIZE
    ]
    return max(fitting, default=1)


class MoCoPretrain(SiamesePretrain):
    progress_metrics = ("loss", "moco_loss", "contrast_acc", "supervised_acc")
    defaults = dict(
        optimizer="momentum",
        learning_rate=0.3,
        weight_decay=1e-4,
        temperature=0.2,
        shuffle_bn=True,
        global_bn=False,
    )

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        if cfg.shuffle_bn and cfg.global_bn:
            raise ConfigError(
                "--shuffle_bn and --global_bn are alternatives: pass --noshuffle_bn with "
                "--global_bn, or --noglobal_bn"
            )
        if cfg.queue_size and cfg.queue_size < cfg.train_batch_size:
            raise ConfigError(
                f"--queue_size={cfg.queue_size} is smaller than one batch "
                f"(--train_batch_size={cfg.train_batch_size}); use at least that"
            )

    def build(self):
        cfg = self.cfg
        per_replica = cfg.train_batch_size // self.num_replicas
        self.bn_splits = (cfg.bn_splits or auto_bn_splits(per_replica)) if cfg.shuffle_bn else 1
        if per_replica % self.bn_splits:
            raise ConfigError(
                f"--bn_splits={self.bn_splits} does not divide the {per_replica} images per replica"
            )
        if cfg.shuffle_bn and self.bn_splits == 1 and self.num_replicas == 1:
            log.warning("--shuffle_bn on one replica with one batch-norm group changes nothing")
        self.model = self.build_online_model()
        self.key_model = self.build_target_model()
        self.queue_size = cfg.queue_size or default_queue_size(
            self.examples_per_epoch, cfg.train_batch_size
        )
        initial = tf.random.stateless_normal(
            [self.queue_size, self.projection_dim], seed=[cfg.seed, 52]
        )
        only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA  # every replica enqueues the same
        self.queue = tf.Variable(
            tf.math.l2_normalize(initial, -1), trainable=False, name="queue", aggregation=only_first
        )
        self.queue_pointer = tf.Variable(
            0, dtype=tf.int32, trainable=False, name="queue_pointer", aggregation=only_first
        )
        log.info("MoCo: queue of %d keys, %d batch-norm group(s)", self.queue_size, self.bn_splits)

    def checkpoint_items(self):
        return {
            "model": self.model,
            "key_model": self.key_model,
            "queue": self.queue,
            "queue_pointer": self.queue_pointer,
        }

    def batch_norm_networks(self):
        return [self.model, self.key_model]

    def grouped(self, network, images):
        """network(images) in training mode, each of the bn_splits groups with its own batch
        statistics."""
        if self.bn_splits == 1:
            return network(images, training=True)
        parts = [network(part, training=True) for part in tf.split(images, self.bn_splits)]
        return {name: tf.concat([p[name] for p in parts], 0) for name in parts[0]}

    def keys(self, images):
        """(this replica's keys, every replica's keys in global batch order), no gradient."""
        if not self.cfg.shuffle_bn:
            keys = self.key_model(images, training=True)["projection"]
            return keys, gather_across_replicas(keys)[0]
        everything, offset = gather_across_replicas(images)
        count, total = images.shape[0], everything.shape[0]
        seed = tf.stack([tf.constant(self.cfg.seed, tf.int64), tf.cast(self.step, tf.int64)])
        order = tf.argsort(tf.random.stateless_uniform([total], seed=seed))  # same on all replicas
        mine = tf.gather(everything, order[offset : offset + count])
        shuffled_keys = self.grouped(self.key_model, mine)["projection"]
        all_shuffled, _ = gather_across_replicas(tf.cast(shuffled_keys, tf.float32))
        all_keys = tf.scatter_nd(order[:, None], all_shuffled, tf.shape(all_shuffled))  # unshuffle
        return all_keys[offset : offset + count], all_keys

    def enqueue(self, keys):
        """Puts the unit keys in the queue (skipped if any is not finite). Replica context: every
        replica holds the same gathered keys, and the first one's assignment is kept."""
        keys = tf.math.l2_normalize(tf.stop_gradient(tf.cast(keys, tf.float32)), -1)
        queue, pointer = enqueue(self.queue, self.queue_pointer, keys)
        finite = tf.reduce_all(tf.math.is_finite(keys))
        self.queue.assign(tf.where(finite, queue, self.queue))
        self.queue_pointer.assign(tf.where(finite, pointer, self.queue_pointer))

    def loss(self, batch):
        images, labels = batch
        query_view, key_view = self.two_views(images)
        online = self.grouped(self.model, query_view)
        keys, all_keys = self.keys(key_view)
        keys = tf.stop_gradient(keys)
        objective, logits = moco_infonce(
            online["projection"], keys, self.queue, self.cfg.temperature
        )
        self.enqueue(all_keys)  # after the loss read the queue: the batch is not its own negative
        supervised_loss, metrics = self.linear_eval_loss(online, labels)
        metrics.update(
            moco_loss=objective,
            contrast_acc=tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), 0), tf.float32)),
        )
        return objective + supervised_loss, metrics

    @tf.autograph.experimental.do_not_convert
    def after_update(self):
        self.momentum_update(self.cfg.moco_momentum)
