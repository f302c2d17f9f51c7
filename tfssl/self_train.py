"""--mode=self_train: curriculum pseudo-labelling (Cascante-Bonilla et al. 2021, "Curriculum
Labeling"), with Noisy Student's noise on the student (Xie et al. 2020).

Round r = 1, 2, ... takes p_r = min(r * --curriculum_step, 100) percent:
  1. the model so far (--teacher for round 1: any tfssl classifier run, e.g. a SimCLR fine-tune,
     or an exported SavedModel) predicts every unlabeled train image (clean, eval view);
  2. the p_r% most confident of them take their predicted class as a pseudo-label
     (model_dir/round_r/pseudo_labels.npz): of each predicted class (select_per_class,
     --balance_pseudo_labels, the default), or of the whole pool (select_most_confident);
  3. a student trains on the labeled subset plus those images (--mode=self_train_round,
     tfssl/methods/self_train.py) in model_dir/round_r: a fresh network each round, or with
     --reinit=false the previous round's (round 1 always starts fresh: the teacher may be any
     network). --train_steps is per round; without it every round trains --train_epochs over
     all train images (round_steps), as long as the last round, whose set they are.
Without --teacher, round 0 first trains the student on the labeled subset alone.

Every round is an ordinary run: it resumes, and --mode=eval / export / --teacher / --checkpoint
given model_dir use the latest finished round (final_run.json points at it). A rerun reuses the
finished rounds. model_dir/result.json is the final round's result, with every round's test
accuracy, pseudo-label count and pseudo-label accuracy (the true labels of the unlabeled images
are read for that diagnosis only), and self_train_rounds.png plots them.
"""

import logging
import os
import time

import numpy as np
import tensorflow as tf

from tfssl.data import augment
from tfssl.data.subsets import SUBSET_FILE
from tfssl.errors import ConfigError
from tfssl.methods.distill import load_teacher
from tfssl.methods.self_train import write_pseudo_labels
from tfssl.train.checkpoints import resolve_checkpoint, run_config
from tfssl.train.rundir import FINAL_RUN_FILE, RESULT_FILE, RunDirectory, read_json, write_json
from tfssl.train.trainer import total_train_steps

log = logging.getLogger("tfssl")

#: Teachers whose network is the SimCLR ResNet: the student takes its depth and width.
RESNET_JOBS = ("finetune", "supervised", "distill", "self_train_round")
RESNET_FIELDS = ("resnet_depth", "width_multiplier", "sk_ratio", "se_ratio")


def curriculum(step_percent):
    """The percentages of the rounds: step, 2 step, ... capped at 100 (20 -> 20, 40, ..., 100)."""
    percents, rounds = [], 1
    while not percents or percents[-1] < 100:
        percents.append(min(round(rounds * step_percent, 6), 100.0))
        rounds += 1
    return percents


def select_most_confident(confidence, percent):
    """Positions of the round(percent / 100 * n) largest confidences, ascending.

    Ties at the cut go to the lower positions (a stable sort on decreasing confidence), so
    exactly that many are chosen and the choice does not depend on the sort's implementation."""
    confidence = np.asarray(confidence)
    count = int(round(percent / 100.0 * confidence.size))
    order = np.lexsort((np.arange(confidence.size), -confidence))
    return np.sort(order[:count])


def select_per_class(confidence, predicted, percent):
    """Positions of the most confident percent within each predicted class, ascending.

    The pseudo-labels keep the classes' predicted shares. Over the whole pool, a teacher that is
    less sure of some classes leaves them out of the early rounds: on 1% MNIST, round 2 had no 0
    or 1 among 23,760 pseudo-labels, and its student all but stopped predicting them
    (BENCHMARKS.md)."""
    predicted = np.asarray(predicted)
    chosen = [
        members[select_most_confident(np.asarray(confidence)[members], percent)]
        for members in (np.flatnonzero(predicted == c) for c in np.unique(predicted))
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def predict_train_split(predict, data, batch_size):
    """Class probabilities of every train-split image (eval view), in split order."""
    compiled = tf.function(predict, reduce_retracing=True, autograph=False)
    probs = []
    view = lambda image: augment.eval_view(image, data.image_size)  # noqa: E731
    for images, _ in data.eval_batches(view, batch_size, data.cfg.train_split):
        probs.append(tf.nn.softmax(tf.cast(compiled(images), tf.float32)).numpy())
    return np.concatenate(probs)


def label_pool(predict, data, percent, path, batch_size, balanced=True):
    """Writes the pseudo-labels of the percent% most confident unlabeled images to path; returns
    the round's labeling figures."""
    start = time.time()
    probs = predict_train_split(predict, data, batch_size)
    pool = np.setdiff1d(np.arange(len(probs)), data.labeled_indices)
    confidence, predicted = probs[pool].max(-1), probs[pool].argmax(-1)
    if balanced:
        chosen = pool[select_per_class(confidence, predicted, percent)]
    else:
        chosen = pool[select_most_confident(confidence, percent)]
    labels = probs[chosen].argmax(-1)
    truth = np.asarray(data.source.labels(data.cfg.train_split))
    write_pseudo_labels(path, chosen, labels, confidence=probs[chosen].max(-1))
    accuracy = float(np.mean(labels == truth[chosen])) if chosen.size else float("nan")
    return {
        "num_pseudo_labels": int(chosen.size),
        "pseudo_labels_per_class": np.bincount(labels, minlength=probs.shape[-1]).tolist(),
        "pseudo_label_accuracy": accuracy,
        "pool_accuracy": float(np.mean(probs[pool].argmax(-1) == truth[pool]))
        if pool.size
        else None,
        "lowest_confidence": float(probs[chosen].max(-1).min()) if chosen.size else None,
        "labeling_time_s": time.time() - start,
    }


def round_steps(cfg, num_train_images):
    """Steps of every round: --train_steps, else --train_epochs over all num_train_images.

    Counted on the whole train split, not on a round's own set, so the early rounds, with few
    pseudo-labels, train as long as the last (on their own sets, round 1 of 1% MNIST got 147 steps
    and its pseudo-labels misled every later round)."""
    return cfg.train_steps or total_train_steps(cfg, num_train_images)


def teacher_architecture(cfg):
    """cfg with the ResNet depth and width of a tfssl --teacher run whose network is one."""
    resolved = resolve_checkpoint(cfg.teacher, "--teacher", allow_saved_model=True)
    if resolved.saved_model_dir:
        return cfg
    trained_cfg, job = run_config(resolved.run_dir, "--teacher")
    if job not in RESNET_JOBS:
        return cfg
    return cfg.replace(**{name: getattr(trained_cfg, name) for name in RESNET_FIELDS})


def train_round(round_cfg):
    """Trains one round unless it finished before; returns its result."""
    from tfssl.train.launch import train

    result_path = os.path.join(round_cfg.run_dir, RESULT_FILE)
    if os.path.exists(result_path):
        log.info("self_train: reusing %s (finished)", round_cfg.run_dir)
        return read_json(result_path)
    return train(round_cfg.validate())


def self_train(cfg):
    """Runs the rounds in cfg.run_dir; returns the final round's result with every round's."""
    from tfssl.data.pipeline import DataBundle

    root = cfg.run_dir
    directory = RunDirectory(root).open("self_train")
    try:
        directory.write_flags(cfg.to_dict(), "self_train")
        data = DataBundle(cfg, root)
        data.labeled_indices  # chosen once, saved in root, shared by every round
        base = cfg.replace(
            mode="self_train_round",
            label_subset_file=os.path.join(root, SUBSET_FILE),
            train_steps=round_steps(cfg, data.num_examples("all")),
        )
        base = teacher_architecture(base) if cfg.teacher else base
        rounds, previous = [], cfg.teacher
        if not previous:
            previous = os.path.join(root, "round_0")
            result = train_round(base.replace(model_dir=previous, pseudo_labels="", teacher=""))
            rounds.append(round_summary(0, 0.0, {}, result))
        for number, percent in enumerate(curriculum(cfg.curriculum_step), 1):
            round_dir = os.path.join(root, f"round_{number}")
            labels_path = os.path.join(round_dir, "pseudo_labels.npz")
            labeling_path = os.path.join(round_dir, "labeling.json")
            if not os.path.exists(labeling_path):  # written last: the labels are complete
                predict, classes = load_teacher(previous, data.image_shape)
                if classes != data.info.num_classes:
                    raise ConfigError(
                        f"--teacher={previous} predicts {classes} classes but {cfg.dataset} has "
                        f"{data.info.num_classes}; self-train on the teacher's dataset"
                    )
                os.makedirs(round_dir, exist_ok=True)
                labeling = label_pool(
                    predict,
                    data,
                    percent,
                    labels_path,
                    cfg.eval_batch_size,
                    balanced=cfg.balance_pseudo_labels,
                )
                if number == 1:
                    labeling["teacher_top_1_accuracy"] = eval_accuracy(
                        predict, data, cfg.eval_batch_size
                    )
                write_json(labeling_path, labeling)
                log.info("self_train round %d: %s", number, labeling)
            continue_from = previous if number > 1 and not cfg.reinit else ""
            round_cfg = base.replace(
                model_dir=round_dir, pseudo_labels=labels_path, checkpoint=continue_from
            )
            result = train_round(round_cfg)
            rounds.append(round_summary(number, percent, read_json(labeling_path), result))
            write_json(os.path.join(root, FINAL_RUN_FILE), {"run_dir": f"round_{number}"})
            previous = round_dir
        summary = finish(root, rounds, result, cfg)
    finally:
        directory.close()
    return summary


def eval_accuracy(predict, data, batch_size):
    """Top-1 accuracy of a teacher on the eval split."""
    compiled = tf.function(predict, reduce_retracing=True, autograph=False)
    view = lambda image: augment.eval_view(image, data.image_size)  # noqa: E731
    correct = count = 0
    for images, labels in data.eval_batches(view, batch_size):
        correct += int(np.sum(np.argmax(compiled(images).numpy(), -1) == labels.numpy()))
        count += int(labels.shape[0])
    return correct / max(count, 1)


def round_summary(number, percent, labeling, result):
    return {
        "round": number,
        "percent": percent,
        "top_1_accuracy": result["eval"]["top_1_accuracy"],
        "train_wall_time_s": result["train_wall_time_s"],
        "global_step": result["global_step"],
        **labeling,
    }


def finish(root, rounds, final_result, cfg):
    """Writes model_dir/result.json and self_train_rounds.png; returns the result."""
    from tfssl import plots

    first = next(r for r in rounds if r["round"] <= 1)
    teacher_accuracy = first.get("teacher_top_1_accuracy", first["top_1_accuracy"])
    result = {
        **final_result,
        "job": "self_train",
        "teacher": cfg.teacher or "round_0",
        "teacher_top_1_accuracy": teacher_accuracy,
        "rounds": rounds,
        "train_wall_time_s": sum(
            r["train_wall_time_s"] + r.get("labeling_time_s", 0.0) for r in rounds
        ),
        "final_run": f"round_{rounds[-1]['round']}",
    }
    write_json(os.path.join(root, RESULT_FILE), result)
    plots.self_train_rounds(rounds, teacher_accuracy, os.path.join(root, "self_train_rounds.png"))
    log.info(
        "self_train: %s",
        ", ".join(f"round {r['round']} {r['top_1_accuracy']:.4f}" for r in rounds),
    )
    return result
