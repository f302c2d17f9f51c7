"""Training one Config: its strategy, its inherited network, its data and the shared Trainer."""

import os

from tfssl.methods import method_class
from tfssl.train.checkpoints import resolve_checkpoint, run_config
from tfssl.train.warm_start import official_network


def inherit_architecture(cfg):
    """A fine-tune, or pretraining continued from --checkpoint, takes its network from that
    checkpoint; a distillation from its teacher (--teacher, else --checkpoint), a copied student
    with the teacher's head input too. An official SimCLR checkpoint gives it by its variables'
    shapes."""
    source = {
        "finetune": ("--checkpoint", cfg.checkpoint),
        "pretrain": ("--checkpoint", cfg.checkpoint),
        "distill": ("--teacher", cfg.teacher or cfg.checkpoint),
        "mil": ("--checkpoint", cfg.checkpoint),
    }.get(cfg.job)
    if source is None or not source[1]:
        return cfg
    resolved = resolve_checkpoint(source[1], source[0], allow_saved_model=cfg.job == "distill")
    if cfg.job == "distill" and cfg.student_init == "teacher":
        from tfssl.methods.distill import copied_student_config

        return copied_student_config(cfg, resolved)
    if resolved.official:
        return cfg.replace(**official_network(resolved.prefix)[0])
    if resolved.saved_model_dir:
        return cfg
    trained_cfg, _ = run_config(resolved.run_dir, source[0])
    return cfg.with_architecture_of(trained_cfg)


def resumed_precision(cfg):
    """The precision of the run that cfg resumes (its flags.json, when it has a checkpoint), or ""
    for a new run."""
    import tensorflow as tf

    from tfssl.train.rundir import FLAGS_FILE, read_json

    flags_file = os.path.join(cfg.run_dir, FLAGS_FILE)
    if not (os.path.exists(flags_file) and tf.train.latest_checkpoint(cfg.run_dir)):
        return ""
    precision = read_json(flags_file).get("precision", "")
    return "" if precision == "auto" else precision


def train(cfg, strategy=None):
    """Trains cfg.job in cfg.run_dir (resuming if it holds a checkpoint) and returns its result
    dict."""
    from tfssl.train.distribute import make_strategy
    from tfssl.train.runtime import setup_runtime
    from tfssl.train.trainer import Trainer

    strategy = strategy or make_strategy(cfg.strategy, cfg.tpu_name, cfg.tpu_zone, cfg.gcp_project)
    cfg = setup_runtime(inherit_architecture(cfg), run_precision=resumed_precision(cfg))
    data = method_class(cfg).make_data(cfg, cfg.run_dir)
    return Trainer(cfg, method_class(cfg), data, strategy).fit()
