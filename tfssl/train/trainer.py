"""The shared trainer: one custom train step under any tf.distribute strategy.

It owns the optimizer (built inside the strategy scope before the first step),
the learning-rate schedule, weight decay, the non-finite guard, several steps
per tf.function call, checkpoints that resume, TensorBoard scalars, progress
lines, the final evaluation and the result JSON. A method supplies only its
networks, its data and its per-replica loss (tfssl/methods/base.py).
"""

import logging
import os
import resource
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from tfssl.errors import ConfigError, NonFiniteLossError
from tfssl.train import checkpoints, distribute, eval_figures, optim, selection
from tfssl.train.batch_norm import batch_norm_layers, recalibrate_on_train_images
from tfssl.train.evaluate import evaluate_all, metrics_text, publish_eval
from tfssl.train.knn import KnnMonitor
from tfssl.train.progress import Progress, Summaries
from tfssl.train.rundir import RunDirectory, run_key
from tfssl.train.runtime import detect_device

log = logging.getLogger("tfssl")


def total_train_steps(cfg, examples_per_epoch):
    """train_steps, else the official epochs * N // batch + 1."""
    return cfg.train_steps or int(examples_per_epoch * cfg.train_epochs // cfg.train_batch_size + 1)


def checkpoint_interval(cfg, examples_per_epoch):
    return cfg.checkpoint_steps or max(
        int(round(cfg.checkpoint_epochs * examples_per_epoch / cfg.train_batch_size)), 1
    )


class Trainer:
    def __init__(self, cfg, method_class, data, strategy):
        self.cfg = cfg
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        if cfg.train_batch_size % self.num_replicas:
            raise ConfigError(
                f"--train_batch_size={cfg.train_batch_size} is not divisible by the "
                f"{self.num_replicas} replicas; use a multiple of {self.num_replicas}"
            )
        self.is_chief = distribute.is_chief(strategy)
        self.run_dir = RunDirectory(cfg.run_dir, writer=self.is_chief)
        self.run_dir.check_job(method_class.job, run_key(cfg))
        self.method = method_class(cfg, data, self.num_replicas)
        if self.method.uses_unlabeled and self.method.unlabeled_batch_size % self.num_replicas:
            raise ConfigError(
                f"--unlabeled_batch_size={self.method.unlabeled_batch_size} is not divisible by "
                f"the {self.num_replicas} replicas"
            )
        self.total_steps = total_train_steps(cfg, self.method.examples_per_epoch)
        self.checkpoint_every = checkpoint_interval(cfg, self.method.examples_per_epoch)
        self.loss_scaling = cfg.precision == "mixed_float16"
        # Evaluations during training, each with next_step(step), due(step, total) and a call
        # returning {metric: value}; their values also go into the final eval.
        steps_per_epoch = self.method.examples_per_epoch / cfg.train_batch_size
        self.monitors = [m for m in (KnnMonitor.create(self.method, cfg, steps_per_epoch),) if m]
        self.selection = None  # BestCheckpoint with --best_checkpoint_metric, made by fit()

        with strategy.scope():
            self.method.build()
            self.variables = self.method.trainable_variables()
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.method.step = self.step
            self.train_seconds = tf.Variable(
                0.0, dtype=tf.float64, trainable=False, name="train_seconds"
            )
            self.optimizer = self._build_optimizer()
            self.optimizer.build(self.variables)
            self.checkpoint = tf.train.Checkpoint(
                step=self.step,
                train_seconds=self.train_seconds,
                optimizer=self.optimizer,
                **self.method.checkpoint_items(),
            )
        if cfg.bn_recalibration_batches and not any(
            map(batch_norm_layers, self.method.batch_norm_networks())
        ):
            raise ConfigError(
                f"--bn_recalibration_batches: --mode={method_class.job} has no batch-norm layers "
                "to re-estimate; leave it at 0"
            )
        self._forward_backward = (
            tf.function(self._loss_and_gradients, jit_compile=True)
            if cfg.jit_compile
            else self._loss_and_gradients
        )

    def _build_optimizer(self):
        cfg = self.cfg
        peak = optim.scaled_learning_rate(
            cfg.learning_rate, cfg.train_batch_size, cfg.learning_rate_scaling
        )
        warmup = int(
            round(cfg.warmup_epochs * self.method.examples_per_epoch // cfg.train_batch_size)
        )
        schedule = self.method.learning_rate_schedule(peak, warmup, self.total_steps)
        optimizer = optim.build_optimizer(cfg.optimizer, schedule, cfg.momentum, cfg.weight_decay)
        if self.loss_scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    # --- the step ---
    def _loss_and_gradients(self, batch):
        """Forward and backward pass of one replica (XLA-compiled with --jit_compile)."""
        cfg = self.cfg
        with tf.GradientTape() as tape:
            loss, metrics = self.method.loss(batch)
            loss = tf.cast(loss, tf.float32)
            weight_decay = optim.l2_weight_decay(self.variables, cfg.weight_decay, cfg.optimizer)
            total_loss = loss + weight_decay
            scaled_loss = total_loss / self.num_replicas
            if self.loss_scaling:
                scaled_loss = self.optimizer.scale_loss(scaled_loss)
        grads = tape.gradient(scaled_loss, self.variables)
        return total_loss, weight_decay, metrics, grads

    def _replica_step(self, batch):
        total_loss, weight_decay, metrics, grads = self._forward_backward(batch)
        learning_rate = tf.identity(
            self.optimizer.learning_rate
        )  # this step's rate, read before the step counts
        pairs = [(g, v) for g, v in zip(grads, self.variables) if g is not None]
        pairs = self.method.adjust_gradients(pairs, learning_rate)
        finite = tf.math.is_finite(total_loss)
        if not self.loss_scaling:  # LossScaleOptimizer already skips non-finite gradients itself
            finite = tf.logical_and(
                finite, tf.math.is_finite(tf.linalg.global_norm([g for g, _ in pairs]))
            )
        context = tf.distribute.get_replica_context()
        bad_replicas = context.all_reduce(
            tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32)
        )
        finite = bad_replicas == 0
        # A non-finite step applies zero gradients: the weights stay finite; the host stops or skips
        # it.
        pairs = [(tf.where(finite, g, tf.zeros_like(g)), v) for g, v in pairs]
        self.optimizer.apply_gradients(pairs)
        metrics = {
            "loss": total_loss,
            "weight_decay": weight_decay,
            **metrics,
            "learning_rate": learning_rate,
            "nonfinite_steps": 1.0 - tf.cast(finite, tf.float32),
        }
        return {k: tf.cast(v, tf.float32) for k, v in metrics.items()}

    def _distributed_step(self, iterator):
        per_replica = self.strategy.run(self._replica_step, args=(next(iterator),))
        self.method.after_update()
        self.step.assign_add(1)
        reduced = {}
        for name, value in per_replica.items():
            op = (
                tf.distribute.ReduceOp.SUM
                if name == "nonfinite_steps"
                else tf.distribute.ReduceOp.MEAN
            )
            reduced[name] = self.strategy.reduce(op, value, axis=None)
        if "nonfinite_steps" in reduced:
            reduced["nonfinite_steps"] = tf.minimum(reduced["nonfinite_steps"], 1.0)
        return reduced

    def make_train_loop(self):
        """The compiled loop fit() runs: train_loop(iterator, num_steps) -> (summed metrics, steps
        run). --mode=benchmark times it on a fixed batch."""
        stop_on_nonfinite = not self.cfg.skip_nonfinite_steps

        def train_loop(iterator, num_steps):
            """Runs up to num_steps steps; returns (summed metrics, steps run). Stops at a
            non-finite step."""
            totals = self._distributed_step(iterator)
            steps_run = tf.constant(1)
            for _ in tf.range(num_steps - 1):
                if stop_on_nonfinite and totals["nonfinite_steps"] > 0:
                    break
                metrics = self._distributed_step(iterator)
                totals = {k: totals[k] + metrics[k] for k in totals}
                steps_run += 1
            return totals, steps_run

        return tf.function(train_loop)

    # --- checkpoints ---
    def _checkpoint_manager(self):
        directory = self.run_dir.path
        if not self.is_chief:  # other workers must save too (collectives), but to a scratch dir
            task_type, task_id = distribute.task_of(self.strategy)
            directory = os.path.join(
                tempfile.gettempdir(), f"tfssl-{task_type}-{task_id}-{os.getpid()}"
            )
        return tf.train.CheckpointManager(
            self.checkpoint,
            directory,
            max_to_keep=self.cfg.keep_checkpoint_max,
            step_counter=self.step,
        )

    def _restore_or_initialize(self):
        latest = tf.train.latest_checkpoint(self.run_dir.path)
        if self.selection is not None and not latest:
            self.selection.history = []  # a fresh start: earlier evaluations are of other weights
        if latest:
            if self.selection is not None:
                self.selection.check_resume()
            checkpoints.restore(
                self.checkpoint,
                latest,
                "checkpoint",
                "this model",
                "use the flags it was trained with or a new --model_dir",
                partial=False,
            )
            log.info("resumed from %s at step %d", latest, int(self.step.numpy()))
        else:
            self.method.initialize()

    def _save(self, manager):
        manager.save(checkpoint_number=self.step)

    # --- best-checkpoint selection (tfssl/train/selection.py) ---
    def _validate(self, summaries, step):
        if self.selection is not None:
            self.selection.validate(self.method, summaries, step)

    def _restore_best(self, manager, step):
        """Loads the chosen networks, saved as the run's last checkpoint; returns the selection."""
        best = self.selection.restore_best()
        if best["step"] != step and self.cfg.bn_recalibration_batches:
            # the final weights were re-estimated; these were not
            recalibrate_on_train_images(self.method, self.cfg, self.strategy)
        self._save(manager)
        return self.selection.summary()

    # --- the run ---
    def fit(self):
        """Trains to total_steps (resuming from model_dir), evaluates, writes result.json. Returns
        the result."""
        cfg = self.cfg
        self.run_dir.open(self.method.job)
        try:
            manager = self._checkpoint_manager()
            self.selection = selection.for_run(
                cfg, self.method, self.run_dir.path, self.is_chief, manager.directory
            )
            self._restore_or_initialize()
            self.run_dir.write_flags(cfg.to_dict(), self.method.job)  # after the resume checks
            with self.strategy.scope():
                self.method.setup_training()
            result = self._train(manager)
            if not self.is_chief:
                shutil.rmtree(manager.directory, ignore_errors=True)
            return result
        finally:
            self.run_dir.close()

    def _train(self, manager):
        cfg = self.cfg
        start_step = int(self.step.numpy())
        summaries = Summaries(self.run_dir.file("train"), enabled=self.is_chief)
        progress = Progress(
            self.total_steps,
            start_step,
            self.method.images_per_step,
            cfg.log_every_secs,
            self.method.job,
        )
        averages, before_recalibration = {}, None
        if start_step < self.total_steps and not self.method.stopped_early():
            log.info(
                "%s: %d steps of batch %d (%d per epoch) on %d replica(s), model_dir=%s",
                self.method.job,
                self.total_steps,
                cfg.train_batch_size,
                self.method.examples_per_epoch,
                self.num_replicas,
                self.run_dir.path,
            )
            self._write_view_summary(summaries, start_step)
            self._validate(summaries, start_step)  # the starting point is a candidate too
            dataset = self.strategy.distribute_datasets_from_function(
                lambda ctx: self.method.train_dataset(ctx, start_step)
            )
            iterator = iter(dataset)
            train_loop = self.make_train_loop()
            step = start_step
            every = cfg.train_summary_steps  # -1: each loop; 0: none; n: every n steps
            window, window_steps = {}, 0  # metric sums since the last training summary
            while step < self.total_steps and not self.method.stopped_early():
                loop_start = time.time()
                next_checkpoint = (step // self.checkpoint_every + 1) * self.checkpoint_every
                next_stop = min(
                    [
                        next_checkpoint,
                        *(m.next_step(step) or next_checkpoint for m in self.monitors),
                    ]
                )
                num_steps = min(cfg.steps_per_loop, self.total_steps - step, next_stop - step)
                if every > 0:
                    num_steps = min(num_steps, (step // every + 1) * every - step)
                totals, steps_run = train_loop(iterator, tf.constant(num_steps))
                steps_run = int(steps_run)
                step = int(self.step.numpy())
                averages = {k: float(v) / steps_run for k, v in totals.items()}
                window = {k: window.get(k, 0.0) + float(v) for k, v in totals.items()}
                window_steps += steps_run
                self.train_seconds.assign_add(time.time() - loop_start)
                if averages["nonfinite_steps"] > 0:
                    if not cfg.skip_nonfinite_steps:
                        raise NonFiniteLossError(
                            f"the loss or its gradients became NaN/Inf at step {step}; "
                            f"the last good checkpoint in {self.run_dir.path} is kept. "
                            "Lower --learning_rate, or pass --skip_nonfinite_steps"
                        )
                    log.warning(
                        "skipped %d non-finite step(s) before step %d",
                        round(averages["nonfinite_steps"] * steps_run),
                        step,
                    )
                if every < 0 or (every > 0 and step % every == 0):
                    summaries.scalars(
                        {k: v / window_steps for k, v in window.items()}, step, prefix="train/"
                    )
                    window, window_steps = {}, 0
                monitored = {}
                for monitor in self.monitors:
                    if monitor.due(step, self.total_steps):
                        monitored.update(monitor())
                        summaries.scalars(monitor.latest, step, prefix="eval/")
                shown = {k: v for k, v in averages.items() if k in self.method.progress_metrics}
                for monitor in self.monitors:
                    shown.update(monitor.latest)
                progress.update(step, shown, force=step >= self.total_steps or bool(monitored))
                if step >= self.total_steps and cfg.bn_recalibration_batches:
                    # With --best_checkpoint_metric the eval split is scored once, at the end.
                    if self.selection is None:
                        before_recalibration = evaluate_all(self.method, cfg)
                        log.info(
                            "eval before re-estimating batch norm: %s",
                            metrics_text(before_recalibration),
                        )
                    recalibrate_on_train_images(self.method, self.cfg, self.strategy)
                if step % self.checkpoint_every == 0 or step >= self.total_steps:
                    self.method.at_checkpoint(step)
                    self._save(manager)
                    self._validate(summaries, step)
        chosen = None
        if self.selection is not None:
            self._validate(summaries, int(self.step.numpy()))  # e.g. resumed after the last save
            chosen = self._restore_best(manager, int(self.step.numpy()))
        return self._finish(summaries, averages, before_recalibration, chosen)

    def _write_view_summary(self, summaries, step):
        if not self.is_chief:
            return
        batch = next(iter(self.method.train_dataset(None, step).take(1)))
        images = self.method.summary_images(batch)
        if images is not None:
            summaries.images("train/augmented_views", images, step)

    def _finish(self, summaries, train_metrics, before_recalibration=None, chosen=None):
        cfg = self.cfg
        step = int(self.step.numpy())
        eval_metrics = evaluate_all(self.method, cfg)
        for monitor in self.monitors:
            eval_metrics.update(monitor())
        publish_eval(self.method, cfg, eval_metrics, summaries, step)
        if self.is_chief:
            eval_figures.write_run_figures(self.method, self.run_dir.path, eval_metrics, cfg)
        data = self.method.data
        result = {
            "job": self.method.job,
            "dataset": cfg.dataset,
            "global_step": step,
            "epochs": step * cfg.train_batch_size / self.method.examples_per_epoch,
            "num_labeled_examples": data.num_examples("labeled")
            if self.method.uses_label_subset
            else None,
            "train_wall_time_s": float(self.train_seconds.numpy()),
            "train_images_per_s": step
            * self.method.images_per_step
            / max(float(self.train_seconds.numpy()), 1e-9),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "train": train_metrics,
            "eval": eval_metrics,
            "eval_split": cfg.eval_split,
            "num_val_examples": data.num_examples("val") if cfg.labeled_val_fraction else None,
            # The auto defaults as resolved for the device this run trained on.
            "precision": cfg.precision,
            "matmul_conv_grads": cfg.matmul_conv_grads,
            "device": detect_device(cfg.strategy).name,
        }
        if chosen is not None:
            result["selection"] = chosen
        if before_recalibration is not None:
            result["eval_before_bn_recalibration"] = before_recalibration
        self.run_dir.write_result(result, step)
        return result
