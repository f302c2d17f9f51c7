"""MICLe positives (--positive_pairs=same_group): pairs from hand-made groups, one anchor per group
in every batch, the single-image fallback, resume, the folder group level and the errors."""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_config
from tfssl.data import groups
from tfssl.data.pipeline import DataBundle
from tfssl.data.sources import SourceOptions, load_source
from tfssl.errors import ConfigError, DataError

# Hand-made groups of the 20 train images: patient -> image numbers. Image i is a flat image of
# gray level VALUES[i], so a decoded view says which image it came from.
PATIENTS = {
    "p0": [0],
    "p1": [1, 7],
    "p2": [2, 3, 4],
    "p3": [5],
    "p4": [6, 19],
    "p5": [8, 9, 10, 11],
    "p6": [12],
    "p7": [13],
    "p8": [14, 15],
    "p9": [16, 17, 18],
}
GROUP_OF = {i: name for name, members in PATIENTS.items() for i in members}
VALUES = 20 + 10 * np.arange(20)


def write_png(path, value, size=16):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def grouped_csv(tmp_path_factory):
    """csv:PATH of 20 train images in the groups above (patient p5 has one image of class 1,
    the rest of its class 0 images: labels follow images, not groups) and 4 test images."""
    root = tmp_path_factory.mktemp("grouped_csv")
    rows = ["path,label,split,group"]
    for i in range(20):
        label = 1 if i in (9, 12, 13, 14, 15, 16, 17, 18) else 0
        write_png(str(root / f"img/{i}.png"), VALUES[i])
        rows.append(f"img/{i}.png,{label},train,{GROUP_OF[i]}")
    for i in range(4):
        write_png(str(root / f"test/{i}.png"), 5 + i)
        rows.append(f"test/{i}.png,{i % 2},test,t{i}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    return f"csv:{root / 'list.csv'}"


def micle_config(dataset, **overrides):
    values = dict(dataset=dataset, positive_pairs="same_group", train_batch_size=4)
    values.update(overrides)
    return tiny_config(**values)


def hand_index():
    ids = [GROUP_OF[i] for i in range(20)]
    return groups.GroupIndex.from_ids(ids)


def elements(index, count, batch_size=4, seed=3, start=0):
    ds = groups.pair_elements(index, batch_size, seed, start).take(count)
    return np.array([[int(v) for v in e] for e in ds])


def test_groups_and_pairs_match_the_hand_made_groups():
    index = hand_index()
    found = {frozenset(index.group(g).tolist()) for g in range(index.num_groups)}
    assert found == {frozenset(m) for m in PATIENTS.values()}
    ordered = collections.Counter()
    for n, a, b in elements(index, 4000):
        assert GROUP_OF[a] == GROUP_OF[b]
        assert (a == b) == (len(PATIENTS[GROUP_OF[a]]) == 1)
        ordered[a, b] += 1
    # Every ordered pair of two different images of a group is drawn, about equally often:
    # p5 has 4 images, so 12 ordered pairs, each 1/12 of p5's anchors.
    p5 = [(a, b) for a in PATIENTS["p5"] for b in PATIENTS["p5"] if a != b]
    counts = np.array([ordered[pair] for pair in p5])
    assert counts.min() > 0.5 * counts.mean() and counts.max() < 1.5 * counts.mean()
    assert set(ordered) == {
        (a, b) for m in PATIENTS.values() for a in m for b in m if a != b or len(m) == 1
    }


def test_an_empty_group_id_is_a_group_of_its_own():
    index = groups.GroupIndex.from_ids(["a", "", "a", " ", "b"])
    assert sorted(sorted(index.group(g).tolist()) for g in range(index.num_groups)) == [
        [0, 2],
        [1],
        [3],
        [4],
    ]


def test_every_batch_holds_one_anchor_per_group_and_each_epoch_rotates_the_rest():
    index = hand_index()
    stream = elements(index, 4 * 60)  # 10 groups, batch 4: group epochs of 8 anchors
    anchors = [GROUP_OF[a] for _, a, _ in stream]
    for k in range(60):
        assert len(set(anchors[4 * k : 4 * k + 4])) == 4
    for e in range(30):
        assert len(set(anchors[8 * e : 8 * e + 8])) == 8
    # the two groups an epoch leaves out change: over 30 epochs each group is an anchor ~24 times
    counts = collections.Counter(anchors)
    assert set(counts) == set(PATIENTS) and min(counts.values()) >= 16


def test_global_batches_of_sharded_input_pipelines_hold_one_anchor_per_group(grouped_csv, tmp_path):
    bundle = DataBundle(micle_config(grouped_csv), str(tmp_path))

    def raw(image_a, image_b, seed):
        return tf.stack([image_a, image_b])

    def images(input_context=None, start_step=0, steps=6):
        ds = bundle.pair_batches(raw, 4, input_context, start_step)
        return [x.numpy() for x, _ in ds.take(steps)]

    whole = images()
    shards = [images(tf.distribute.InputContext(2, i, 2), steps=6) for i in range(2)]
    for step in range(6):
        global_batch = np.concatenate([shards[0][step], shards[1][step]])
        np.testing.assert_array_equal(global_batch, whole[step])
        first = np.round(global_batch[:, 0, 0, 0, 0] * 255).astype(int)
        owners = {GROUP_OF[int(np.flatnonzero(VALUES == v)[0])] for v in first}
        assert len(owners) == 4


def image_numbers(views):
    """The image number of each flat view (its gray level)."""
    levels = np.round(views[..., 0, 0, 0] * 255).astype(int)
    return np.vectorize(lambda v: int(np.flatnonzero(VALUES == v)[0]))(levels)


def test_single_image_groups_fall_back_to_two_views_of_that_image(grouped_csv, tmp_path):
    bundle = DataBundle(micle_config(grouped_csv), str(tmp_path))
    labels_by_image = bundle.train_labels
    ds = bundle.pair_batches(lambda a, b, seed: tf.stack([a, b]), 4)
    seen_single = seen_pairs = 0
    for views, labels in ds.take(40):
        numbers = image_numbers(views.numpy())
        np.testing.assert_array_equal(labels.numpy(), labels_by_image[numbers])
        for a, b in numbers:
            group = PATIENTS[GROUP_OF[a]]
            assert b in group
            if len(group) == 1:
                assert a == b
                seen_single += 1
            else:
                assert a != b
                seen_pairs += 1
    assert seen_single > 20 and seen_pairs > 60


def test_the_pretraining_stream_resumes_where_it_stopped(grouped_csv, tmp_path):
    from tfssl.methods.simclr import SimCLRPretrain

    cfg = micle_config(grouped_csv, seed=7)
    method = SimCLRPretrain(cfg, DataBundle(cfg, str(tmp_path)))
    whole = [(x.numpy(), y.numpy()) for x, y in method.train_dataset(None, 0).take(9)]
    resumed = [(x.numpy(), y.numpy()) for x, y in method.train_dataset(None, 5).take(4)]
    assert whole[0][0].shape == (4, 16, 16, 2)  # two views on channels
    for (x1, y1), (x2, y2) in zip(whole[5:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = SimCLRPretrain(cfg.replace(seed=8), DataBundle(cfg.replace(seed=8), str(tmp_path)))
    assert not np.array_equal(next(iter(other.train_dataset(None, 0)))[0].numpy(), whole[0][0])


def test_the_linear_head_learns_each_view_with_its_own_label(grouped_csv, tmp_path):
    """Two images of one patient may have different labels: the head's loss uses each view's."""
    from tfssl.methods.simclr import SimCLRPretrain

    cfg = micle_config(grouped_csv, mode="pretrain", seed=1)
    method = SimCLRPretrain(cfg, DataBundle(cfg, str(tmp_path)))
    method.build()
    for images, labels in method.train_dataset(None, 0).take(40):
        if np.any(labels[:, 0] != labels[:, 1]):
            break
    assert np.any(labels[:, 0] != labels[:, 1])
    loss, metrics = method.loss((images, labels))
    views = tf.concat(tf.split(images, 2, axis=-1), 0)
    logits = method.model(views, training=True)["logits"].numpy().astype(np.float64)
    targets = np.concatenate([labels[:, 0], labels[:, 1]])
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -log_softmax[np.arange(len(targets)), targets].mean()
    np.testing.assert_allclose(float(metrics["supervised_loss"]), expected, rtol=1e-4)
    assert np.isfinite(float(metrics["contrast_loss"])) and float(loss) > float(
        metrics["contrast_loss"]
    )


def test_a_patient_in_both_train_and_eval_split_is_warned_about(tmp_path, caplog):
    import logging

    rows = ["path,label,split,group"] + [
        f"{i}.png,{i % 2},{split},{group}"
        for i, (split, group) in enumerate(
            [("train", "a"), ("train", "b"), ("test", "b"), ("test", "c")]
        )
    ]
    for i in range(4):
        write_png(str(tmp_path / f"{i}.png"), 40 * i)
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="tfssl"):
        logging.getLogger("tfssl").propagate = True
        DataBundle(micle_config(f"csv:{tmp_path / 'list.csv'}"), str(tmp_path))
    assert "1 groups (e.g. b) have images in both train and test" in caplog.text


def test_one_line_errors(grouped_csv, gray_folder, tmp_path):
    no_groups = micle_config(f"folder:{gray_folder}", mode="pretrain")
    with pytest.raises(DataError, match="needs a group id .* --folder_groups"):
        DataBundle(no_groups, str(tmp_path)).group_index
    too_few = micle_config(grouped_csv, train_batch_size=16)
    with pytest.raises(DataError, match="has 10 groups .* --train_batch_size=10 or less"):
        DataBundle(too_few, str(tmp_path)).pair_batches(lambda a, b, s: a, 16)
    with pytest.raises(ConfigError, match="is for contrastive pretraining .* --mode=finetune"):
        micle_config(grouped_csv, mode="finetune")
    with pytest.raises(ConfigError, match="keep --cache_dataset"):
        micle_config(grouped_csv, cache_dataset=False)


def test_folder_group_level_with_and_without_a_split_level(tmp_path):
    flat = tmp_path / "flat"
    for cls, group, i in [("a", "p1", 0), ("a", "p1", 1), ("a", "p2", 2), ("b", "p1", 3)]:
        write_png(str(flat / cls / group / f"{i}.png"), 10 * i)
    source = load_source(f"folder:{flat}", SourceOptions(folder_groups=True))
    assert list(source.info.split_sizes) == ["train"] and source.info.class_names == ("a", "b")
    assert list(source.groups("train")) == ["p1", "p1", "p2", "p1"]  # p1 under a and b: one group
    assert source.labels("train").tolist() == [0, 0, 0, 1]

    split = tmp_path / "split"
    for part, cls, group, i in [("train", "a", "p1", 0), ("train", "b", "p2", 1)]:
        write_png(str(split / part / cls / group / f"{i}.png"), 10 * i)
    write_png(str(split / "test" / "a" / "p9" / "2.png"), 50)
    source = load_source(f"folder:{split}", SourceOptions(folder_groups=True))
    assert sorted(source.info.split_sizes) == ["test", "train"]
    assert list(source.groups("train")) == ["p1", "p2"] and list(source.groups("test")) == ["p9"]

    without = load_source(f"folder:{flat}")  # read as root/<split>/<class>/<image>: a hint
    with pytest.raises(DataError, match="needs --folder_groups"):
        without.num_examples("train")
    write_png(str(flat / "a" / "loose.png"), 99)
    with pytest.raises(DataError, match="must be in a group folder"):
        load_source(f"folder:{flat}", SourceOptions(folder_groups=True))
