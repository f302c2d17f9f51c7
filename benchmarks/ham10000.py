"""Prepares HAM10000 (dermatoscopy, several images per lesion) for the MICLe benchmark as a csv:
dataset with a lesion-level split and the lesion as the group.

    python benchmarks/ham10000.py --root=/work/shared/data/ham10000

ROOT holds HAM10000_metadata.csv (lesion_id, image_id, dx, ...) and images/<image_id>.jpg. The
benchmark's copy came from the public GitHub repository mmalek06/bounding-box-detection-ham1000
(data/images: the 10,015 images as 200x150 JPEGs) and the metadata from
rafid0004/Capstone_Skinlyze_ML-Model; the original is Tschandl et al. 2018, Harvard Dataverse
doi:10.7910/DVN/DBW86T (CC BY-NC 4.0). Nothing of it is committed here.

It writes, under ROOT:
- png<SIZE>/<image_id>.png: the centre square of each image (150x150 of 200x150), resized to
  SIZE px (Lanczos);
- ham10000_lesions.csv: path,label,split,group with label benign or malignant (malignant = mel,
  bcc, akiec: melanoma, basal cell carcinoma, actinic keratosis / intraepithelial carcinoma) and
  group the lesion_id. Lesions, not images, are split 70/10/20 into train/val/test, stratified by
  diagnosis (dx) with a seeded order, so no lesion has images on both sides of a split.
"""

import argparse
import collections
import csv
import hashlib
import os

import numpy as np

MALIGNANT = ("mel", "bcc", "akiec")
FRACTIONS = (("train", 0.7), ("val", 0.1), ("test", 0.2))


def lesion_splits(lesion_dx, seed):
    """{lesion_id: split}: per diagnosis, lesions in a seeded order cut at 70% and 80%."""
    by_dx = collections.defaultdict(list)
    for lesion, dx in sorted(lesion_dx.items()):
        by_dx[dx].append(lesion)
    rng = np.random.default_rng(seed)
    splits = {}
    for dx in sorted(by_dx):
        lesions = [by_dx[dx][i] for i in rng.permutation(len(by_dx[dx]))]
        cut_1 = round(FRACTIONS[0][1] * len(lesions))
        cut_2 = round((FRACTIONS[0][1] + FRACTIONS[1][1]) * len(lesions))
        for i, lesion in enumerate(lesions):
            splits[lesion] = "train" if i < cut_1 else "val" if i < cut_2 else "test"
    return splits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from PIL import Image

    metadata = os.path.join(args.root, "HAM10000_metadata.csv")
    with open(metadata, newline="") as f:
        rows = list(csv.DictReader(f))
    lesion_dx = {}
    for row in rows:
        if lesion_dx.setdefault(row["lesion_id"], row["dx"]) != row["dx"]:
            raise SystemExit(f"lesion {row['lesion_id']} has two diagnoses")
    splits = lesion_splits(lesion_dx, args.seed)
    out_dir = f"png{args.size}"
    os.makedirs(os.path.join(args.root, out_dir), exist_ok=True)
    table = [("path", "label", "split", "group")]
    for row in sorted(rows, key=lambda r: r["image_id"]):
        target = os.path.join(out_dir, f"{row['image_id']}.png")
        if not os.path.exists(os.path.join(args.root, target)):
            with Image.open(os.path.join(args.root, "images", f"{row['image_id']}.jpg")) as im:
                im = im.convert("RGB")
                side = min(im.size)
                left, top = (im.width - side) // 2, (im.height - side) // 2
                square = im.crop((left, top, left + side, top + side))
                square.resize((args.size, args.size), Image.LANCZOS).save(
                    os.path.join(args.root, target)
                )
        label = "malignant" if row["dx"] in MALIGNANT else "benign"
        table.append((target, label, splits[row["lesion_id"]], row["lesion_id"]))
    out = os.path.join(args.root, "ham10000_lesions.csv")
    with open(out, "w", newline="") as f:
        csv.writer(f).writerows(table)
    with open(metadata, "rb") as f:
        print(f"metadata md5 {hashlib.md5(f.read()).hexdigest()}")
    for split, _ in FRACTIONS:
        chosen = [r for r in table[1:] if r[2] == split]
        sizes = collections.Counter(collections.Counter(r[3] for r in chosen).values())
        malignant = sum(r[1] == "malignant" for r in chosen)
        print(
            f"{split}: {len(chosen)} images, {sum(sizes.values())} lesions "
            f"(images per lesion: {dict(sorted(sizes.items()))}), {malignant} malignant"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
