"""Mean Teacher: consistency costs, ramp-ups, the EMA rule and the perturbations against numpy and
scipy, the teacher outside the gradients, a resume that restores the teacher, 2 replicas, ConvLarge,
and real steps on gray_folder."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from tests.conftest import tiny_config
from tfssl import restore
from tfssl.data.augment import random_elastic, random_rotation, random_translation, rotate, warp
from tfssl.data.pipeline import DataBundle
from tfssl.losses import consistency
from tfssl.methods.mean_teacher import MeanTeacher
from tfssl.models.convnets import ConvLarge
from tfssl.train import runtime
from tfssl.train.distribute import make_strategy
from tfssl.train.trainer import Trainer


def mt_config(folder, run_dir, **overrides):
    values = dict(
        mode="mean_teacher",
        dataset=f"folder:{folder}",
        model_dir=str(run_dir),
        num_labels=16,
        train_batch_size=8,
        unlabeled_batch_size=8,
        width_multiplier=0.125,
        eval_steps=1,
    )
    values.update(overrides)
    return tiny_config(**values)


def numpy_values(variables):
    return [v.numpy().copy() for v in variables]


def params(method):
    """(teacher, student) parameter values as numpy arrays."""
    return numpy_values(method.model.trainable_variables), numpy_values(
        method.student.trainable_variables
    )


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- the pure functions ---
def test_consistency_costs_match_numpy():
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(6, 5)) * 2, rng.normal(size=(6, 5)) * 2
    p_s, p_t = softmax(student), softmax(teacher)
    s, t = tf.constant(student, tf.float32), tf.constant(teacher, tf.float32)
    np.testing.assert_allclose(
        consistency.softmax_mse(s, t), np.sum((p_s - p_t) ** 2) / (6 * 5), rtol=1e-5
    )
    kl = np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), -1))
    np.testing.assert_allclose(consistency.softmax_kl(s, t), kl, rtol=1e-5)
    np.testing.assert_allclose(
        consistency.logit_distance(s, t), np.mean((student - teacher) ** 2), rtol=1e-5
    )
    assert float(consistency.softmax_kl(t, t)) == pytest.approx(0.0, abs=1e-6)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([s, t])
        mse, kl_cost, distance = (
            consistency.softmax_mse(s, t),
            consistency.softmax_kl(s, t),
            consistency.logit_distance(s, t),
        )
    assert (
        tape.gradient(mse, t) is None and tape.gradient(kl_cost, t) is None
    )  # the teacher is a target
    assert tape.gradient(mse, s) is not None
    assert tape.gradient(distance, t) is not None  # both heads are pulled together


def test_sigmoid_rampup_is_exp_minus_5_one_minus_t_squared():
    for step in (0, 1, 700, 2500, 4999, 5000, 9000):
        t = min(step / 5000, 1.0)
        assert float(
            consistency.sigmoid_rampup(tf.constant(step, tf.int64), 5000)
        ) == pytest.approx(np.exp(-5 * (1 - t) ** 2), rel=1e-6)
    assert float(consistency.sigmoid_rampup(3, 0)) == 1.0


def test_ema_decay_schedule():
    def expected(step, rampup=1000):
        return min(1 - 1 / (step + 2), 0.99 if step < rampup else 0.999)

    for step in (0, 1, 10, 98, 150, 999, 1000, 1500, 10**6):
        assert float(consistency.ema_decay(step, 1000, 0.99, 0.999)) == pytest.approx(
            expected(step), rel=1e-6
        )
    assert float(consistency.ema_decay(50, 1000, 0.99, 0.999)) == pytest.approx(51 / 52)
    assert float(consistency.ema_decay(5000, 1000, 0.99, 0.999)) == pytest.approx(0.999)


def test_random_translation_is_a_reflect_padded_shift():
    image = np.random.default_rng(1).uniform(size=(7, 6, 2)).astype(np.float32)
    padded = np.pad(image, [(2, 2), (2, 2), (0, 0)], mode="reflect")
    shifts = set()
    for i in range(40):
        out = random_translation(tf.constant(image), 2, tf.constant([3, i])).numpy()
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(out, padded[dy : dy + 7, dx : dx + 6])
        ]
        assert found, "not a shifted crop of the reflect-padded image"
        shifts.add(found[0])
    assert len(shifts) > 10  # offsets cover [-2, 2]^2


def test_random_translation_zero_fill_moves_the_image_over_zeros():
    image = np.random.default_rng(2).uniform(0.5, 1.0, size=(6, 5, 1)).astype(np.float32)
    blocks = set()
    for i in range(20):
        out = random_translation(tf.constant(image), 3, tf.constant([5, i]), fill="zero").numpy()
        rows, cols = np.nonzero(
            out[..., 0]
        )  # every input pixel is nonzero: the kept block is a rectangle
        top, left = rows.min(), cols.min()
        height, width = rows.max() - top + 1, cols.max() - left + 1
        assert np.count_nonzero(out) == height * width
        src_top = 6 - height if top == 0 else 0  # shifted up: the block is the image's bottom part
        src_left = 5 - width if left == 0 else 0
        np.testing.assert_array_equal(
            out[top : top + height, left : left + width],
            image[src_top : src_top + height, src_left : src_left + width],
        )
        blocks.add((top, left, height, width))
    assert len(blocks) > 8  # offsets cover [-3, 3]^2


def test_rotate_matches_numpy_and_scipy():
    image = np.random.default_rng(3).uniform(size=(9, 11, 1)).astype(np.float32)
    square = image[:9, :9]
    for quarter_turns in (1, -1, 2):
        out = rotate(tf.constant(square), tf.constant(quarter_turns * np.pi / 2)).numpy()
        np.testing.assert_allclose(out, np.rot90(square, quarter_turns), atol=1e-5)
    for degrees in (
        17.0,
        -23.0,
    ):  # bilinear; scipy treats the border differently, so compare the interior
        out = rotate(tf.constant(image), tf.constant(np.deg2rad(degrees), tf.float32)).numpy()[
            ..., 0
        ]
        expected = ndimage.rotate(image[..., 0], degrees, reshape=False, order=1, mode="constant")
        np.testing.assert_allclose(out[2:-2, 2:-2], expected[2:-2, 2:-2], atol=1e-5)
    angles = set()
    for i in range(10):
        out = random_rotation(tf.constant(square), 30.0, tf.constant([4, i])).numpy()
        angles.add(round(float(np.abs(out - square).sum()), 3))
    assert len(angles) == 10


def test_warp_is_bilinear_with_the_border_repeated_like_scipy():
    rng = np.random.default_rng(4)
    image = rng.uniform(size=(7, 9, 2)).astype(np.float32)
    displacement = rng.uniform(-3, 3, size=(7, 9, 2)).astype(
        np.float32
    )  # reaches past every border
    out = warp(tf.constant(image), tf.constant(displacement)).numpy()
    rows, cols = np.meshgrid(np.arange(7), np.arange(9), indexing="ij")
    coords = [rows + displacement[..., 0], cols + displacement[..., 1]]
    for c in range(2):
        expected = ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest")
        np.testing.assert_allclose(out[..., c], expected, atol=1e-5)
    shift = np.broadcast_to(
        np.float32([1, -2]), (7, 9, 2)
    )  # reads (y + 1, x - 2): the image moves up and right
    out = warp(tf.constant(image), tf.constant(shift)).numpy()
    np.testing.assert_allclose(out[:-1, 2:], image[1:, :-2], atol=1e-6)


def test_random_elastic_displacements_have_the_smoothed_uniform_spread():
    """Warping the coordinate ramps returns each pixel's displacement. For U(-1, 1) noise blurred by
    a normalised Gaussian w (taps w_i w_j), each displacement has std
    alpha * sqrt(1/3 * sum_ij (w_i w_j)^2)."""
    size, alpha, sigma = 64, 10.0, 2.0
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    ramps = tf.constant(np.stack([rows, cols], -1), tf.float32)
    margin = (
        int(np.ceil(3 * sigma)) + 4
    )  # away from the zero-padded border of the blur and from clipping
    fields = []
    for i in range(8):
        warped = random_elastic(ramps, alpha, sigma, tf.constant([7, i])).numpy()
        fields.append(
            warped[margin:-margin, margin:-margin] - ramps.numpy()[margin:-margin, margin:-margin]
        )
    fields = np.stack(fields)
    radius = int(np.ceil(3 * sigma))  # the blur's kernel: 2 * radius + 1 taps
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    expected_std = alpha * np.sqrt((taps**2).sum() ** 2 / 3)
    assert abs(fields.std() / expected_std - 1) < 0.15
    assert np.abs(fields).max() <= alpha
    neighbour_gap = np.abs(
        np.diff(fields, axis=1)
    ).mean()  # smooth: far below the gap of independent pixels
    assert neighbour_gap < 0.3 * fields.std()
    same = random_elastic(ramps, alpha, sigma, tf.constant([7, 0])).numpy()
    np.testing.assert_array_equal(
        same[margin:-margin, margin:-margin] - ramps.numpy()[margin:-margin, margin:-margin],
        fields[0],
    )
    np.testing.assert_allclose(
        random_elastic(ramps, 0.0, sigma, tf.constant([7, 0])).numpy(), ramps.numpy()
    )


# --- the network ---
def test_convlarge_matches_the_paper_layout_at_full_width():
    """Conv (no bias) + BN (gamma, beta) per layer, then a 128 -> 10 dense head."""
    model = ConvLarge(10, width_multiplier=1.0)
    outputs = model(tf.zeros([2, 32, 32, 3]))
    convs = [
        (3, 3, 128),
        (3, 128, 128),
        (3, 128, 128),
        (3, 128, 256),
        (3, 256, 256),
        (3, 256, 256),
        (3, 256, 512),
        (1, 512, 256),
        (1, 256, 128),
    ]
    expected = sum(k * k * c_in * c_out + 2 * c_out for k, c_in, c_out in convs) + 128 * 10 + 10
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == expected
    assert outputs["logits"].shape == (2, 10) and outputs["final_avg_pool"].shape == (2, 128)
    assert model.conv3_1.conv.padding == "valid"


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (16, 16, 1)])
def test_convlarge_config_round_trip_and_two_heads(shape):
    model = ConvLarge(7, width_multiplier=0.125, num_heads=2, dropout_rate=0.3)
    images = tf.random.uniform([3, *shape])
    outputs = model(images, training=False)
    assert outputs["logits"].shape == outputs["cons_logits"].shape == (3, 7)
    clone = ConvLarge.from_config(model.get_config())
    clone(images)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        clone(images, training=False)["cons_logits"], outputs["cons_logits"], atol=1e-5
    )
    assert clone.get_config() == model.get_config()


# --- the method, eagerly ---
@pytest.fixture(scope="module")
def built(gray_folder, tmp_path_factory):
    cfg = mt_config(gray_folder, tmp_path_factory.mktemp("built"), consistency_rampup_steps=100)
    runtime.setup_runtime(cfg)
    method = MeanTeacher(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.step = tf.Variable(0, dtype=tf.int64)
    return method


def test_after_update_is_the_ema_of_parameters_only(built):
    method = built
    rng = np.random.default_rng(2)
    for variable in method.model.variables + method.student.variables:
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    teacher, student = params(method)
    teacher_stats = numpy_values(method.model.non_trainable_variables)
    for step, decay in (
        (5000, 0.999),
        (99, 0.99),
        (3, 0.8),
    ):  # after the ramp-up, during it, first steps
        method.step.assign(step)
        method.after_update()
        teacher = [decay * t + (1 - decay) * s for t, s in zip(teacher, student)]
        for variable, value in zip(method.model.trainable_variables, teacher):
            np.testing.assert_allclose(
                variable.numpy(), value, rtol=1e-5, atol=1e-6, err_msg=variable.path
            )
    for variable, value in zip(method.student.trainable_variables, student):
        np.testing.assert_array_equal(variable.numpy(), value)  # the student is left alone
    for variable, value in zip(method.model.non_trainable_variables, teacher_stats):
        np.testing.assert_array_equal(variable.numpy(), value)  # BN statistics are not averaged


def test_teacher_gets_no_gradients(built):
    method = built
    method.step.assign(50)
    teacher_refs = {v.value.ref() for v in method.model.variables}
    assert not teacher_refs & {v.value.ref() for v in method.trainable_variables()}
    batch = next(iter(method.train_dataset(None, 0)))
    with tf.GradientTape() as tape:
        loss, metrics = method.loss(batch)
    grads = tape.gradient(
        loss, method.model.trainable_variables + method.student.trainable_variables
    )
    num_teacher = len(method.model.trainable_variables)
    assert all(g is None for g in grads[:num_teacher])
    assert all(g is not None for g in grads[num_teacher:])
    assert float(metrics["consistency_weight"]) == pytest.approx(
        100 * np.exp(-5 * 0.5**2), rel=1e-5
    )
    (student_views, teacher_views), labels = batch[0]
    assert labels.shape == (8,) and len(batch) == 2  # labeled and unlabeled batches
    assert method.images_per_step == sum(int(stream[0][0].shape[0]) for stream in batch) == 16
    assert not np.allclose(student_views, teacher_views)  # independent noise and shifts


def test_zero_consistency_weight_trains_on_labels_alone(gray_folder, tmp_path):
    cfg = mt_config(gray_folder, tmp_path, consistency_weight=0.0)
    method = MeanTeacher(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.step = tf.Variable(0, dtype=tf.int64)
    batch = next(iter(method.train_dataset(None, 0)))
    assert len(batch) == 1 and method.images_per_step == 8
    loss, metrics = method.loss(batch)
    assert float(loss) == pytest.approx(float(metrics["class_loss"]))


def test_two_head_loss_matches_numpy(gray_folder, tmp_path):
    """With --logit_distance_cost the student's first head learns the labels, its second the
    teacher, and the heads are tied:
    CE(labels, s1) + w(t) * mse(p(s2), p(teacher)) + cost * mean((s1 - s2)^2)."""
    cfg = mt_config(
        gray_folder,
        tmp_path,
        logit_distance_cost=0.3,
        convlarge_dropout=0.0,
        consistency_rampup_steps=100,
    )
    method = MeanTeacher(cfg, DataBundle(cfg, cfg.run_dir))
    method.build()
    method.step = tf.Variable(40, dtype=tf.int64)
    rng = np.random.default_rng(5)
    for (
        variable
    ) in method.student.trainable_variables:  # untie the two heads and the student from the teacher
        variable.assign(variable + 0.1 * rng.normal(size=variable.shape).astype(np.float32))
    views = [tf.constant(rng.uniform(size=(n, 16, 16, 1)), tf.float32) for n in (8, 8, 8, 8)]
    labels = tf.constant([0, 1, 2, 3, 0, 1, 2, 3])
    batch = (((views[0], views[1]), labels), ((views[2], views[3]), labels))
    loss, metrics = method.loss(batch)
    # batch norm in training mode normalises with the batch's own statistics: the same outputs again
    student = method.student(tf.concat([views[0], views[2]], 0), training=True)
    s1, s2 = student["logits"].numpy(), student["cons_logits"].numpy()
    teacher = method.model(tf.concat([views[1], views[3]], 0), training=True)["logits"].numpy()
    class_loss = -np.mean(np.log(softmax(s1[:8]))[np.arange(8), labels.numpy()])
    weight = 100 * np.exp(-5 * (1 - 40 / 100) ** 2)
    expected = (
        class_loss
        + weight * np.mean((softmax(s2) - softmax(teacher)) ** 2)
        + 0.3 * np.mean((s1 - s2) ** 2)
    )
    assert np.max(np.abs(s1 - s2)) > 1e-3
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert float(metrics["class_loss"]) == pytest.approx(class_loss, rel=1e-4)


# --- real training: EMA across steps and replicas, checkpoints and a resume ---
@pytest.fixture(scope="module")
def runs(gray_folder, tmp_path_factory):
    """2 steps on 2 replicas (the logical CPUs of conftest) with a checkpoint after each, then a
    rebuilt trainer on one device that resumes for a 3rd step."""
    run_dir = tmp_path_factory.mktemp("mt_run")
    cfg = mt_config(gray_folder, run_dir, train_steps=2, steps_per_loop=1, checkpoint_steps=1)
    runtime.setup_runtime(cfg)
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    first = Trainer(cfg, MeanTeacher, DataBundle(cfg, cfg.run_dir), strategy)
    initial_student = numpy_values(first.method.student.trainable_variables)
    result = first.fit()
    final = params(first.method)
    resumed = Trainer(
        cfg.replace(train_steps=3),
        MeanTeacher,
        DataBundle(cfg, cfg.run_dir),
        make_strategy("one_device"),
    )
    resumed_result = resumed.fit()
    saved = {
        step: params(restore.load_trained(str(run_dir / f"ckpt-{step}"))[0]) for step in (1, 2, 3)
    }
    return dict(
        initial_student=initial_student,
        result=result,
        final=final,
        resumed_result=resumed_result,
        saved=saved,
        first=first,
        strategy=strategy,
    )


def test_teacher_follows_the_ema_across_steps_and_the_resume(runs):
    saved = runs["saved"]
    teacher = runs["initial_student"]  # a fresh teacher is a copy of the student
    for step in (1, 2, 3):  # the update after 0-based step k uses min(1 - 1/(k + 2), 0.99)
        decay = 1 - 1 / (step + 1)
        teacher = [decay * t + (1 - decay) * s for t, s in zip(teacher, saved[step][1])]
        for got, want in zip(saved[step][0], teacher):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_every_replica_holds_the_same_teacher(runs):
    strategy, method = runs["strategy"], runs["first"].method
    for variable in method.model.variables:
        first_copy, second_copy = strategy.experimental_local_results(variable.value)
        np.testing.assert_array_equal(
            first_copy.numpy(), second_copy.numpy(), err_msg=variable.path
        )


def test_resume_restores_the_saved_teacher(runs):
    teacher, student = runs["final"]
    for got, want in zip(runs["saved"][2][0], teacher):
        np.testing.assert_array_equal(got, want)
    assert any(not np.allclose(t, s) for t, s in zip(teacher, student))  # not a copy of the student
    assert runs["resumed_result"]["global_step"] == 3


def test_teacher_keeps_its_own_batch_norm_statistics(runs):
    method = runs["first"].method
    teacher_means = [
        v.numpy() for v in method.model.non_trainable_variables if "moving_mean" in v.path
    ]
    student_means = [
        v.numpy() for v in method.student.non_trainable_variables if "moving_mean" in v.path
    ]
    assert teacher_means and all(
        np.any(m != 0) for m in teacher_means
    )  # updated by its own forward passes
    assert not all(np.allclose(t, s) for t, s in zip(teacher_means, student_means))


def test_training_reports_student_and_teacher(runs):
    result = runs["result"]
    for name in (
        "class_loss",
        "consistency_loss",
        "student_acc",
        "teacher_acc",
        "consistency_weight",
    ):
        assert np.isfinite(result["train"][name]), name
    assert {"top_1_accuracy", "student_top_1_accuracy", "student_loss"} <= set(result["eval"])
    assert result["num_labeled_examples"] == 16
    trained = {v.value.ref() for v in runs["first"].variables}
    assert not trained & {v.value.ref() for v in runs["first"].method.model.variables}
