"""The training methods, by name. Each is one module; adding one is one line here.

METHODS maps a training --mode to its Method class; --mode=pretrain takes its class from
SSL_METHODS, by --ssl_method. Classes are imported when first asked for.
"""

import importlib

from tfssl.errors import ConfigError

METHODS = {
    "pretrain": None,  # by --ssl_method, below
    "finetune": "tfssl.methods.finetune:FineTune",
    "supervised": "tfssl.methods.finetune:Supervised",
    "distill": "tfssl.methods.distill:Distill",
    "mean_teacher": "tfssl.methods.mean_teacher:MeanTeacher",
    "ladder": "tfssl.methods.ladder:Ladder",
    "ssvae": "tfssl.methods.ssvae:SSVAE",
    "fixmatch": "tfssl.methods.fixmatch:FixMatch",
    "self_train_round": "tfssl.methods.self_train:SelfTrainRound",
    "mil": "tfssl.methods.mil:MIL",
}

#: Self-supervised pretraining objectives (--mode=pretrain --ssl_method=...).
SSL_METHODS = {
    "simclr": "tfssl.methods.simclr:SimCLRPretrain",
    "byol": "tfssl.methods.byol:BYOLPretrain",
    "simsiam": "tfssl.methods.simsiam:SimSiamPretrain",
    "moco": "tfssl.methods.moco:MoCoPretrain",
    "rotation": "tfssl.methods.rotation:RotationPretrain",
    "jigsaw": "tfssl.methods.jigsaw:JigsawPretrain",
    "context_encoder": "tfssl.methods.context_encoder:ContextEncoderPretrain",
    "colorization": "tfssl.methods.colorization:ColorizationPretrain",
    "mae": "tfssl.methods.mae:MAEPretrain",
}


def _load(path):
    module_name, class_name = path.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def lookup(job, ssl_method="simclr"):
    """The Method class of a training job (and pretraining objective)."""
    if job == "pretrain":
        if ssl_method not in SSL_METHODS:
            raise ConfigError(f"--ssl_method={ssl_method} is not one of {', '.join(SSL_METHODS)}")
        return _load(SSL_METHODS[ssl_method])
    return _load(METHODS[job])


def method_class(cfg):
    """The Method class that trains cfg (a Config of a training job)."""
    return lookup(cfg.job, cfg.ssl_method)
