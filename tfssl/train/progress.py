"""Progress lines with rate and ETA, and TensorBoard scalars."""

import logging
import time

import tensorflow as tf

log = logging.getLogger("tfssl")


def format_duration(seconds):
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Logs 'step a/b (p%) | x steps/s y img/s | ETA | metrics' at most every `every_secs`."""

    def __init__(self, total_steps, start_step, batch_size, every_secs=10.0, name="train"):
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.every_secs = every_secs
        self.name = name
        self.start_time = self._last_time = time.time()
        self.start_step = self._last_step = start_step

    def update(self, step, metrics, force=False):
        now = time.time()
        if not force and now - self._last_time < self.every_secs:
            return
        rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
        eta = (self.total_steps - step) / rate if rate > 0 else 0.0
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        log.info(
            "%s step %d/%d (%d%%) | %.2f steps/s %.0f img/s | ETA %s | %s",
            self.name,
            step,
            self.total_steps,
            100 * step // max(self.total_steps, 1),
            rate,
            rate * self.batch_size,
            format_duration(eta),
            shown,
        )
        self._last_time, self._last_step = now, step

    @property
    def elapsed(self):
        return time.time() - self.start_time


class Summaries:
    """TensorBoard writer that does nothing on non-chief workers."""

    def __init__(self, logdir, enabled=True):
        self.writer = tf.summary.create_file_writer(logdir) if enabled else None

    def scalars(self, values, step, prefix=""):
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(prefix + name, value)
        self.writer.flush()

    def text(self, name, text, step):
        if self.writer is None or not text:
            return
        with self.writer.as_default(step=step):
            tf.summary.text(name, text)
        self.writer.flush()

    def images(self, name, images, step, max_outputs=8):
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            tf.summary.image(name, images, max_outputs=max_outputs)
        self.writer.flush()
