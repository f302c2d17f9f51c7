"""Training one Config: its strategy, its inherited network, its data and the shared Trainer."""

from tfssl.methods import method_class
from tfssl.train.checkpoints import resolve_checkpoint, run_config


def inherit_architecture(cfg):
    """A fine-tune takes its network from --checkpoint; a distillation from --teacher (a tfssl
    run)."""
    source = {
        "finetune": ("--checkpoint", cfg.checkpoint),
        "distill": ("--teacher", cfg.teacher),
        "mil": ("--checkpoint", cfg.checkpoint),
    }.get(cfg.job)
    if source is None or not source[1]:
        return cfg
    resolved = resolve_checkpoint(source[1], source[0], allow_saved_model=cfg.job == "distill")
    if resolved.saved_model_dir:
        return cfg
    trained_cfg, _ = run_config(resolved.run_dir, source[0])
    return cfg.with_architecture_of(trained_cfg)


def train(cfg, strategy=None):
    """Trains cfg.job in cfg.run_dir (resuming if it holds a checkpoint) and returns its result
    dict."""
    from tfssl.train.distribute import make_strategy
    from tfssl.train.runtime import setup_runtime
    from tfssl.train.trainer import Trainer

    strategy = strategy or make_strategy(cfg.strategy, cfg.tpu_name)
    cfg = inherit_architecture(cfg)
    setup_runtime(cfg)
    data = method_class(cfg).make_data(cfg, cfg.run_dir)
    return Trainer(cfg, method_class(cfg), data, strategy).fit()
