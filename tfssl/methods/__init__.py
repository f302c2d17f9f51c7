"""Training methods by job name, imported on demand."""

import importlib

METHODS = {
    "pretrain": "tfssl.methods.simclr:SimCLRPretrain",
    "finetune": "tfssl.methods.finetune:FineTune",
    "supervised": "tfssl.methods.finetune:Supervised",
    "distill": "tfssl.methods.distill:Distill",
    "mean_teacher": "tfssl.methods.mean_teacher:MeanTeacher",
    "ladder": "tfssl.methods.ladder:Ladder",
    "ssvae": "tfssl.methods.ssvae:SSVAE",
}


def method_class(job):
    module_name, class_name = METHODS[job].split(":")
    return getattr(importlib.import_module(module_name), class_name)
