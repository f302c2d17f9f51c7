"""Commands written for the official SimCLR TF2 run.py (google-research/simclr, tf2/).

A command that names its job the official way (--train_mode, or --mode=train|train_then_eval)
means what it meant there: the flags it leaves out take the official defaults below, not tfssl's
(which suit small data on a CPU). The TPU flags select --strategy=tpu; flags that change nothing
here say so in one log line each.
"""

from tfssl.errors import ConfigError

OFFICIAL_MODES = ("train", "train_then_eval")

#: tf2/run.py's defaults for the flags tfssl shares, and two of its fixed choices that are flags
#: here (crop area 0.08-1 and horizontal flips in tf2/data_util.py). --use_tpu's official default
#: (True) is not taken: tfssl picks devices with --strategy.
OFFICIAL_DEFAULTS = dict(
    learning_rate=0.3,
    learning_rate_scaling="linear",
    warmup_epochs=10.0,
    weight_decay=1e-6,
    batch_norm_decay=0.9,
    train_batch_size=512,
    train_split="train",
    train_epochs=100.0,
    train_steps=0,
    eval_steps=0,
    eval_batch_size=256,
    checkpoint_epochs=1.0,
    checkpoint_steps=0,
    eval_split="validation",
    dataset="imagenet2012",
    cache_dataset=False,
    lineareval_while_pretraining=True,
    zero_init_logits_layer=False,
    fine_tune_after_block=-1,
    optimizer="lars",
    momentum=0.9,
    keep_checkpoint_max=5,
    temperature=0.1,
    hidden_norm=True,
    proj_head_mode="nonlinear",
    proj_out_dim=128,
    num_proj_layers=3,
    ft_proj_selector=0,
    global_bn=True,
    width_multiplier=1.0,
    resnet_depth=50,
    sk_ratio=0.0,
    se_ratio=0.0,
    image_size=224,
    color_jitter_strength=1.0,
    use_blur=True,
    crop_min_area=0.08,
    use_flip=True,
)

_NO_EFFECT = {
    "eval_name": "eval results are named by split and step (eval_<split>_<step>.json)",
    "keep_hub_module_max": "runs export no SavedModel by themselves; --mode=export writes one",
}
_TPU_ONLY = ("master", "tpu_zone", "gcp_project")


def is_official_command(given):
    return "train_mode" in given or given.get("mode") in OFFICIAL_MODES


def official_values(given):
    """The flags given, with what the official spellings imply: --train_mode alone means
    --mode=train (the official default), --use_tpu means --strategy=tpu, and --master names the
    TPU when --tpu_name does not."""
    values = dict(given)
    if "train_mode" in values and "mode" not in values:
        values["mode"] = "train"
    if values.get("use_tpu"):
        if values.get("strategy", "auto") not in ("auto", "tpu"):
            raise ConfigError(
                f"--use_tpu=True asks for a TPU but --strategy={values['strategy']}; give one"
            )
        values["strategy"] = "tpu"
    if values.get("master") and not values.get("tpu_name"):
        values["tpu_name"] = values["master"]
    return values


def defaults_for(given):
    """OFFICIAL_DEFAULTS for a command in the official spelling, else None."""
    return dict(OFFICIAL_DEFAULTS) if is_official_command(given) else None


def notes(cfg, given):
    """One log line for each official flag given that changes nothing here, and one saying that
    the official defaults apply."""
    lines = []
    if is_official_command(given):
        left_out = sorted(k for k in OFFICIAL_DEFAULTS if k not in given)
        if left_out:
            lines.append(
                "official command line (--train_mode/--mode=train): flags left out take the "
                f"official tf2/run.py defaults ({', '.join(left_out[:6])}, ...)"
            )
    if "use_tpu" in given and not given["use_tpu"]:
        lines.append(
            f"--use_tpu=False has no effect: tfssl picks devices with --strategy={cfg.strategy} "
            "(auto: the GPUs if any, else the CPU)"
        )
    for name in _TPU_ONLY:
        if given.get(name) and cfg.strategy != "tpu":
            lines.append(f"--{name} has no effect without a TPU (--use_tpu or --strategy=tpu)")
    for name, why in _NO_EFFECT.items():
        if name in given:
            lines.append(f"--{name} has no effect in tfssl: {why}")
    return lines
