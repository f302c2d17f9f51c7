"""SimCLRv2 stages 2 and 3 (fine-tune, distill), the supervised baseline, eval and export."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl import jobs, restore
from tfssl.data.pipeline import DataBundle
from tfssl.errors import CheckpointError, ConfigError
from tfssl.train import launch, runtime
from tfssl.train.evaluate import predict_labels


def train(**values):
    return launch.train(tiny_config(**values))


@pytest.fixture(scope="module")
def runs(gray_folder, tmp_path_factory):
    """A short pretrain, then a fine-tune that fits the easy synthetic classes.

    80 steps, not 40: after 40 the test accuracy ranged 0.79-1.0 over seeds and over oneDNN on or
    off (whose rounding differences grow over the first pretraining steps); after 80 it was
    0.96-1.0."""
    root = tmp_path_factory.mktemp("stages")
    common = dict(dataset=f"folder:{gray_folder}", eval_steps=1)
    train(mode="pretrain", model_dir=str(root / "pre"), train_steps=4, **common)
    finetune = train(
        mode="finetune",
        checkpoint=str(root / "pre"),
        model_dir=str(root / "ft"),
        num_labels=16,
        train_steps=80,
        steps_per_loop=40,
        learning_rate=0.4,
        **common,
    )
    return root, common, finetune


def encoder_values(model):
    return [v.numpy().copy() for v in model.encoder.variables]


def test_fine_tune_learns_the_labeled_subset(runs):
    _, _, finetune = runs
    assert finetune["num_labeled_examples"] == 16
    assert finetune["eval"]["top_1_accuracy"] >= 0.9  # 4 easy classes, chance 0.25


def test_linear_eval_keeps_encoder_and_bn_statistics_bit_identical(runs):
    root, common, _ = runs
    from tfssl.methods.finetune import FineTune
    from tfssl.train.distribute import make_strategy
    from tfssl.train.trainer import Trainer

    cfg = launch.inherit_architecture(
        tiny_config(
            mode="finetune",
            checkpoint=str(root / "pre"),
            model_dir=str(root / "linear"),
            fine_tune_after_block=4,
            ft_proj_selector=0,
            num_labels=16,
            train_steps=3,
            **common,
        )
    )
    runtime.setup_runtime(cfg)
    trainer = Trainer(cfg, FineTune, DataBundle(cfg, cfg.run_dir), make_strategy("one_device"))
    model = trainer.method.model
    trainer.method.initialize()
    before = encoder_values(model)
    pretrained = encoder_values(restore.load_trained(str(root / "pre"))[0].model)
    for a, b in zip(before, pretrained):  # the pretrained weights were loaded
        np.testing.assert_array_equal(a, b)
    head_before = model.supervised_head.dense.kernel.numpy().copy()
    trainer.fit()
    assert any("moving_variance" in v.path for v in model.encoder.variables)
    for variable, value in zip(model.encoder.variables, before):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert not np.array_equal(
        head_before, model.supervised_head.dense.kernel.numpy()
    )  # the head did learn


def test_same_seed_same_subset_in_every_mode(mnist_data_dir, tmp_path):
    subsets = {}
    for mode in ("finetune", "supervised", "mean_teacher"):
        cfg = tiny_config(
            mode=mode,
            dataset="mnist",
            data_dir=mnist_data_dir,
            label_fraction=0.01,
            checkpoint="unused",
            model_dir=str(tmp_path / mode),
        )
        subsets[mode] = DataBundle(cfg, cfg.run_dir).labeled_indices
    labels = DataBundle(cfg, str(tmp_path / "x")).source.labels("train")
    for indices in subsets.values():
        assert len(indices) == 600 and np.all(np.bincount(labels[indices]) == 60)
        np.testing.assert_array_equal(indices, subsets["finetune"])
    other = tiny_config(
        mode="supervised",
        dataset="mnist",
        data_dir=mnist_data_dir,
        label_fraction=0.01,
        label_seed=1,
        model_dir=str(tmp_path / "seed1"),
    )
    assert not np.array_equal(DataBundle(other, other.run_dir).labeled_indices, subsets["finetune"])
    saved = json.load(open(tmp_path / "supervised" / "label_subset.json"))
    assert saved["indices"] == subsets["finetune"].tolist()


def test_distilled_student_agrees_with_teacher(runs):
    root, common, _ = runs
    result = train(
        mode="distill",
        teacher=str(root / "ft"),
        model_dir=str(root / "distill"),
        train_steps=80,
        steps_per_loop=40,
        learning_rate=2.0,
        **common,
    )
    student = restore.load_trained(str(root / "distill"))
    teacher = restore.load_trained(str(root / "ft"))
    truth, student_labels = predict_labels(student[0], student[1], "test", 32)
    _, teacher_labels = predict_labels(teacher[0], teacher[1], "test", 32)
    assert np.mean(student_labels == teacher_labels) >= 0.8
    assert result["train"]["teacher_agreement"] > 0.5

    # the student teaches a second round: --teacher=<distill run> serves the student's logits, not
    # its teacher's
    from tfssl.methods.distill import load_teacher

    images = next(iter(student[1].eval_batches(student[0].eval_view, 8, "test", 1)))[0]
    second_teacher, _ = load_teacher(str(root / "distill"), student[1].image_shape)
    np.testing.assert_allclose(second_teacher(images), student[0].eval_logits(images), atol=1e-5)
    assert np.max(np.abs(second_teacher(images) - teacher[0].eval_logits(images))) > 1e-3
    round2 = train(  # a smaller student this time
        mode="distill",
        teacher=str(root / "distill"),
        model_dir=str(root / "round2"),
        train_steps=2,
        student_width_multiplier=0.03125,
        **common,
    )
    assert round2["global_step"] == 2
    model = restore.load_trained(str(root / "round2"))[0].model
    assert model.encoder.get_config()["width_multiplier"] == 0.03125


def copied_student(cfg):
    """A Distill method built and initialised as a fresh run would be."""
    from tfssl.methods.distill import Distill

    cfg = launch.inherit_architecture(cfg)
    method = Distill(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.initialize()
    return method


def test_a_student_copied_from_its_teacher_starts_as_the_teacher(runs, tmp_path):
    """--student_init=teacher: the student's first logits are the fine-tuned teacher's (read back
    by restore, with its projection layer under the head), a copy of that student copies it, and
    the trained student loads without its teacher."""
    root, common, _ = runs
    teacher, data, _, _ = restore.load_trained(str(root / "ft"))
    images = next(iter(data.eval_batches(teacher.eval_view, 8, "test", 1)))[0]
    shutil.copytree(root / "ft", tmp_path / "ft")
    cfg = tiny_config(
        mode="distill",
        teacher=str(tmp_path / "ft"),
        student_init="teacher",
        model_dir=str(tmp_path / "copy"),
        train_steps=2,
        **common,
    )
    student = copied_student(cfg)
    assert student.model.ft_proj_selector == 1  # the teacher's, not a fresh student's 0
    np.testing.assert_allclose(student.eval_logits(images), teacher.eval_logits(images), atol=1e-5)
    fresh = copied_student(cfg.replace(student_init="scratch"))
    assert np.max(np.abs(fresh.eval_logits(images) - teacher.eval_logits(images))) > 1e-3

    trained = launch.train(cfg)  # two steps at lr 0.1 move it away from the teacher
    assert trained["global_step"] == 2
    first = restore.load_trained(str(tmp_path / "copy"))[0]
    assert np.max(np.abs(first.eval_logits(images) - teacher.eval_logits(images))) > 1e-4
    second = copied_student(
        cfg.replace(teacher=str(tmp_path / "copy"), model_dir=str(tmp_path / "copy2"))
    )
    np.testing.assert_allclose(second.eval_logits(images), first.eval_logits(images), atol=1e-5)
    shutil.rmtree(tmp_path / "ft")  # eval and export read the student's network from its own run
    again = restore.load_trained(str(tmp_path / "copy"))[0]
    np.testing.assert_allclose(again.eval_logits(images), first.eval_logits(images), atol=1e-6)


def test_a_copied_student_needs_a_tfssl_classifier_of_its_size(runs, tmp_path):
    root, common, _ = runs
    cfg = dict(mode="distill", student_init="teacher", model_dir=str(tmp_path / "d"), **common)
    with pytest.raises(ConfigError, match="copies the teacher's network"):
        train(teacher=str(root / "ft"), student_width_multiplier=0.5, **cfg)
    with pytest.raises(ConfigError, match="is a pretrain run"):
        train(teacher=str(root / "pre"), **cfg)


def numpy_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_distillation(teacher_logits, student_logits, temperature):
    """T^2 * mean_i sum_c -softmax(t_i/T)_c log softmax(s_i/T)_c, in numpy."""
    teacher = numpy_log_softmax(teacher_logits / temperature)
    student = numpy_log_softmax(student_logits / temperature)
    return temperature**2 * np.mean(-np.sum(np.exp(teacher) * student, -1))


def distill_first_batch(runs, tmp_path, **flags):
    """A distillation of the fine-tuned test run, set up to train at temperature 2, and its first
    training batch."""
    from tfssl.methods.distill import Distill

    root, common, _ = runs
    cfg = tiny_config(
        mode="distill",
        teacher=str(root / "ft"),
        model_dir=str(tmp_path / "d"),
        distill_temperature=2.0,
        **flags,
        **common,
    )
    method = Distill(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.setup_training()
    return method, next(iter(method.train_dataset(None, 0)))


def test_distill_loss_with_labels_matches_numpy(runs, tmp_path):
    """--distill_label_weight=w: T^2 CE(softmax(t/T), s/T) on the unlabeled batch + w CE(labels, s)
    on a labeled one."""
    method, batch = distill_first_batch(runs, tmp_path, num_labels=16, distill_label_weight=0.5)
    (images, _), (labeled_images, labels) = batch
    assert labeled_images.shape[0] == 16 and int(tf.reduce_max(labels)) < 4
    loss, metrics = method.loss(batch)

    teacher = method.teacher(images).numpy()
    student = method.model(images, training=True)["logits"].numpy()  # batch statistics: the same
    kd = numpy_distillation(teacher, student, 2.0)
    labeled_logits = method.model(labeled_images, training=True)["logits"].numpy()
    supervised = -np.mean(numpy_log_softmax(labeled_logits)[np.arange(16), labels.numpy()])
    assert float(metrics["distill_loss"]) == pytest.approx(kd, rel=1e-4)
    assert float(loss) == pytest.approx(kd + 0.5 * supervised, rel=1e-4)


def test_distill_loss_with_known_labels_matches_numpy(runs, tmp_path):
    """--distill_known_labels: T^2 CE(softmax(t/T), s/T) + 1/B sum over the batch's labeled
    images of CE(label, s), on one batch of all train images (unlabeled ones add nothing)."""
    method, batch = distill_first_batch(runs, tmp_path, num_labels=32, distill_known_labels=True)
    images, labels = batch[0].numpy(), batch[1].numpy()
    known = labels >= 0
    assert images.shape[0] == 16 and 0 < known.sum() < 16
    loss, metrics = method.loss(batch)

    logits = method.model(images, training=True)["logits"].numpy()
    kd = numpy_distillation(method.teacher(images).numpy(), logits, 2.0)
    own = -numpy_log_softmax(logits)[np.flatnonzero(known), labels[known]].sum() / 16
    assert float(metrics["distill_loss"]) == pytest.approx(kd, rel=1e-4)
    assert float(loss) == pytest.approx(kd + own, rel=1e-4)
    with pytest.raises(ConfigError, match="give one of them"):
        type(method).validate_config(method.cfg.replace(distill_label_weight=0.5))


EXPORT_CHECK = """
import json, sys
import numpy as np
import tensorflow as tf
assert 'tfssl' not in sys.modules
export_dir, images_path = sys.argv[1], sys.argv[2]
images = np.load(images_path)
loaded = tf.saved_model.load(export_dir)
out = loaded.serve(tf.constant(images))
signature = loaded.signatures['serving_default'](images=tf.constant(images))
variables = list(loaded.trainable_variables)
before = [v.numpy().copy() for v in variables]
opt_images = tf.image.convert_image_dtype(tf.constant(images), tf.float32)
labels = tf.argmax(out['logits'], -1)
losses = []
for _ in range(3):
    with tf.GradientTape() as tape:
        logits = loaded.call_training(opt_images)['logits']
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, variables)
    for v, g in zip(variables, grads):
        if g is not None:
            v.assign_sub(0.1 * g)
    losses.append(float(loss))
changed = sum(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))
json.dump({'probabilities': out['probabilities'].numpy().tolist(),
           'signature_probabilities': signature['probabilities'].numpy().tolist(),
           'features': sorted(out), 'losses': losses, 'changed': changed,
           'num_trainable': len(variables), 'tfssl_imported': 'tfssl' in sys.modules},
          open(sys.argv[3], 'w'))
"""


# gray: slow (the default suite exports gray runs in test_distill_from_an_exported_teacher)
@pytest.mark.parametrize(
    "folder", [pytest.param("gray_folder", marks=pytest.mark.slow), "rgb_folder"]
)
def test_export_round_trip_without_tfssl(folder, request, tmp_path):
    data_root = request.getfixturevalue(folder)
    run_dir = str(tmp_path / "sup")
    train(
        mode="supervised",
        dataset=f"folder:{data_root}",
        model_dir=run_dir,
        train_steps=2,
        eval_steps=1,
    )
    export_dir = str(tmp_path / "exported")
    jobs.run(tiny_config(mode="export", checkpoint=run_dir, export_dir=export_dir))
    assert os.path.exists(export_dir + ".keras")
    method, data, _, _ = restore.load_trained(run_dir)
    raw = np.stack(
        [data.source.decode(r["encoded"]).numpy() for r in data.source.records("test").take(6)]
    )
    expected = tf.nn.softmax(
        method.eval_logits(tf.image.convert_image_dtype(raw, tf.float32))
    ).numpy()
    np.save(tmp_path / "images.npy", raw)
    script = tmp_path / "check.py"
    script.write_text(EXPORT_CHECK)
    subprocess.run(
        [
            sys.executable,
            str(script),
            export_dir,
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.json"),
        ],
        check=True,
        cwd=str(tmp_path),
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    out = json.load(open(tmp_path / "out.json"))
    assert not out["tfssl_imported"]
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["signature_probabilities"], expected, atol=1e-5)
    assert {"probabilities", "logits", "final_avg_pool", "block_group4"} <= set(out["features"])
    assert out["changed"] > 0 and out["num_trainable"] > 0
    assert out["losses"][-1] < out["losses"][0]


EXPORTS_CHECK = """
import json, sys
import numpy as np
import tensorflow as tf
assert 'tfssl' not in sys.modules
images = np.load(sys.argv[1])
twice = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)  # the same images at twice the size
results = {}
for export_dir in sys.argv[3:]:
    loaded = tf.saved_model.load(export_dir)
    native, large = loaded.serve(tf.constant(images)), loaded.serve(tf.constant(twice))
    results[export_dir] = {'features': sorted(native), 'tfssl_imported': 'tfssl' in sys.modules,
                           **{f'{k}_native': native[k].numpy().tolist() for k in native},
                           'probabilities_large': large['probabilities'].numpy().tolist()}
json.dump(results, open(sys.argv[2], 'w'))
"""


@pytest.mark.slow  # 35 s on 2 cores; test_export_round_trip_without_tfssl is the fast check
def test_export_from_every_stage_at_any_image_size(runs, tmp_path):
    """Pretrain, fine-tune and Mean Teacher runs export; in a process without tfssl, `serve` takes
    uint8 images at the trained size and at twice it (a bicubic resize inside) and gives the Keras
    model's probabilities."""
    root, common, _ = runs
    mt_dir = str(tmp_path / "mt")
    train(
        mode="mean_teacher",
        model_dir=mt_dir,
        num_labels=16,
        train_batch_size=8,
        unlabeled_batch_size=8,
        width_multiplier=0.125,
        train_steps=2,
        **common,
    )
    run_dirs = {"pre": str(root / "pre"), "ft": str(root / "ft"), "mt": mt_dir}
    export_dirs = {name: str(tmp_path / f"export_{name}") for name in run_dirs}
    for name, run_dir in run_dirs.items():
        jobs.run(tiny_config(mode="export", checkpoint=run_dir, export_dir=export_dirs[name]))
    method, data, _, _ = restore.load_trained(run_dirs["ft"])
    raw = np.stack(
        [data.source.decode(r["encoded"]).numpy() for r in data.source.records("test").take(6)]
    )
    np.save(tmp_path / "images.npy", raw)
    script = tmp_path / "check.py"
    script.write_text(EXPORTS_CHECK)
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "images.npy"),
            str(tmp_path / "out.json"),
            *export_dirs.values(),
        ],
        check=True,
        cwd=str(tmp_path),
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    out = json.load(open(tmp_path / "out.json"))

    native = tf.image.convert_image_dtype(raw, tf.float32)
    large = tf.clip_by_value(
        tf.image.resize(np.repeat(np.repeat(native, 2, 1), 2, 2), [16, 16], "bicubic"), 0, 1
    )
    for name, run_dir in run_dirs.items():
        got = out[export_dirs[name]]
        assert not got["tfssl_imported"]
        method = restore.load_trained(run_dir)[0]
        np.testing.assert_allclose(
            got["probabilities_native"], tf.nn.softmax(method.eval_logits(native)), atol=1e-5
        )
        np.testing.assert_allclose(
            got["probabilities_large"], tf.nn.softmax(method.eval_logits(large)), atol=1e-5
        )
        if (
            name != "mt"
        ):  # the official names; the projection head's input is the encoder's pooled output
            assert {"block_group1", "block_group4", "proj_head_input", "proj_head_output"} <= set(
                got["features"]
            )
            np.testing.assert_array_equal(
                got["proj_head_input_native"], got["final_avg_pool_native"]
            )
            # pretraining projects to proj_out_dim; fine-tuning keeps ft_proj_selector=1 layer, as
            # wide as its input
            width = 16 if name == "pre" else np.shape(got["final_avg_pool_native"])[1]
            assert np.shape(got["proj_head_output_native"]) == (6, width)
    mt_method = restore.load_trained(mt_dir)[0]  # Mean Teacher exports the teacher, not the student
    assert np.max(np.abs(mt_method.student_logits(native) - mt_method.eval_logits(native))) > 1e-4


def test_distill_from_an_exported_teacher(runs, tmp_path):
    """--teacher may be a SavedModel: its logits are the fine-tuned run's, and a student trains from
    it."""
    root, common, _ = runs
    export_dir = str(tmp_path / "exported_ft")
    jobs.run(tiny_config(mode="export", checkpoint=str(root / "ft"), export_dir=export_dir))
    from tfssl.methods.distill import load_teacher

    method, data, _, _ = restore.load_trained(str(root / "ft"))
    images = next(iter(data.eval_batches(method.eval_view, 8, "test", 1)))[0]
    teacher, num_classes = load_teacher(export_dir, data.image_shape)
    assert num_classes == 4
    np.testing.assert_allclose(teacher(images), method.eval_logits(images), atol=1e-5)
    result = train(
        mode="distill",
        teacher=export_dir,
        model_dir=str(tmp_path / "student"),
        train_steps=2,
        **common,
    )
    assert result["global_step"] == 2 and 0 <= result["train"]["teacher_agreement"] <= 1
    with pytest.raises(ConfigError, match="is a SavedModel"):  # no run to copy the student from
        train(
            mode="distill",
            teacher=export_dir,
            student_init="teacher",
            model_dir=str(tmp_path / "copy"),
            **common,
        )


def test_bad_checkpoints(runs, tmp_path):
    root, common, _ = runs
    with pytest.raises(CheckpointError, match="--teacher=.*does not exist"):
        train(
            mode="distill",
            teacher=str(tmp_path / "missing"),
            model_dir=str(tmp_path / "d"),
            **common,
        )
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        train(mode="finetune", checkpoint=str(empty), model_dir=str(tmp_path / "f"), **common)
    changed = tmp_path / "changed"
    shutil.copytree(root / "pre", changed)
    flags = json.load(open(changed / "flags.json"))
    flags["resnet_depth"] = 34
    json.dump(flags, open(changed / "flags.json", "w"))
    with pytest.raises(CheckpointError, match="does not fit"):
        train(mode="finetune", checkpoint=str(changed), model_dir=str(tmp_path / "g"), **common)
    with pytest.raises(ConfigError, match="holds a finetune run, not supervised"):
        train(mode="supervised", model_dir=str(root / "ft"), **common)


def test_eval_waits_for_checkpoints_until_the_run_is_over(runs, tmp_path):
    """--eval_wait evaluates the checkpoints of a run; a finished run (result.json) ends the
    wait."""
    root, common, _ = runs
    result = jobs.run(
        tiny_config(
            mode="eval",
            checkpoint=str(root / "ft"),
            eval_wait=True,
            eval_timeout_secs=30,
            eval_steps=1,
        )
    )
    assert result["checkpoint"].endswith("ckpt-80")
    assert os.path.exists(root / "ft" / "eval_test_80.json")


def _point_checkpoint_state_at(run_dir, step):
    tf.compat.v1.train.update_checkpoint_state(str(run_dir), str(run_dir / f"ckpt-{step}"))


def test_eval_picks_up_checkpoints_of_a_live_run(runs, tmp_path):
    """--eval_wait on a run still going: it evaluates the newest checkpoint, waits, evaluates the
    next one written after it started, and stops when the run writes its result."""
    root, _, _ = runs
    live = tmp_path / "live"
    shutil.copytree(root / "ft", live, ignore=shutil.ignore_patterns("result*.json", "eval_*.json"))
    _point_checkpoint_state_at(live, 70)  # the run so far
    results = []
    waiter = threading.Thread(
        target=lambda: results.append(
            jobs.run(
                tiny_config(
                    mode="eval",
                    checkpoint=str(live),
                    eval_wait=True,
                    eval_timeout_secs=60,
                    eval_steps=1,
                )
            )
        )
    )
    waiter.start()

    def wait_for(path):
        deadline = time.time() + 120
        while not path.exists():
            assert time.time() < deadline and waiter.is_alive(), f"no {path.name}"
            time.sleep(0.2)

    wait_for(live / "eval_test_70.json")
    assert not (live / "eval_test_80.json").exists()
    _point_checkpoint_state_at(live, 80)  # the run saves its next checkpoint
    wait_for(live / "eval_test_80.json")
    shutil.copy(root / "ft" / "result.json", live / "result.json")  # ... and finishes
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert results[0]["checkpoint"].endswith("ckpt-80") and results[0]["global_step"] == 80
