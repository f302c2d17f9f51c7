"""Input-pipeline throughput on an image folder, with and without --cache_dataset.

    python benchmarks/input_pipeline.py --make_folder=/tmp/png224 --count=2000 --size=224
    python benchmarks/input_pipeline.py --dataset=folder:/tmp/png224 --image_size=224

--make_folder writes COUNT random-texture RGB PNGs of SIZE px in two class folders (outside the
repository). Otherwise it times the training stream of fine-tuning (decode, resize, random crop
and flip, batches of --batch_size) on the dataset: images/s over --batches batches after
--warmup batches, without the cache (every image decoded from its file each time) and with it
(decoded once; the one pass is timed on its own). Prints one JSON line per figure.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout

import tfssl  # noqa: E402, F401  (TensorFlow's CPU options before it loads)


def make_folder(root, count, size, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % 2
        directory = os.path.join(root, f"class{label}")
        os.makedirs(directory, exist_ok=True)
        low = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        image = np.kron(low, np.ones((8, 8, 1), np.uint8))  # blocks: compresses like a photo
        image = np.clip(image + rng.integers(0, 24, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(directory, f"{i:05d}.png"))


def images_per_second(iterator, batches, batch_size):
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def measure(dataset, image_size, batch_size, batches, warmup, cache):
    from tfssl.config import Config
    from tfssl.data import augment
    from tfssl.data.pipeline import DataBundle

    cfg = Config(
        mode="supervised",
        dataset=dataset,
        image_size=image_size,
        eval_split="train",
        cache_dataset=cache,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        data = DataBundle(cfg, run_dir)

        def view(image, seed):
            return augment.finetune_view(image, data.image_size, seed, 0.3, True)

        figure = {
            "figure": "input_pipeline",
            "dataset": dataset,
            "cache_dataset": cache,
            "image_size": data.image_size,
            "batch_size": batch_size,
            "train_images": data.num_examples(),
            "cpu_cores": len(os.sched_getaffinity(0)),
        }
        if cache:
            start = time.perf_counter()
            data.decoded_array(cfg.train_split)
            seconds = time.perf_counter() - start
            figure["decode_once_s"] = round(seconds, 2)
            figure["decode_once_images_per_s"] = round(data.num_examples() / seconds, 1)
        iterator = iter(data.train_batches(view, batch_size))
        for _ in range(warmup):
            next(iterator)
        figure["images_per_s"] = round(images_per_second(iterator, batches, batch_size), 1)
    print(json.dumps(figure), flush=True)
    return figure


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--make_folder", default="")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--image_size", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    if args.make_folder:
        make_folder(args.make_folder, args.count, args.size)
        return
    without = measure(
        args.dataset, args.image_size, args.batch_size, args.batches, args.warmup, False
    )
    with_cache = measure(
        args.dataset, args.image_size, args.batch_size, args.batches, args.warmup, True
    )
    speedup = with_cache["images_per_s"] / without["images_per_s"]
    print(json.dumps({"figure": "cache_speedup", "ratio": round(speedup, 2)}), flush=True)


if __name__ == "__main__":
    main()
