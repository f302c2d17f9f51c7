"""BENCHMARKS.md's step-throughput sections (issue #9): same-pass peers, profiles, memory, oneDNN."""

import os

from report_common import HERE, command_lines, load_records, machine_name, printed

PEERS = [
    ("official google-research/simclr tf2 train step (tf_keras)", "fp32", 35.6, 4.9),
    ("plain Keras 3 Model.fit", "mixed_bfloat16", 47.0, 3.1),
    ("PyTorch 2.13, bf16 + channels_last + torch.compile", "bf16", 63.7, 1.8),
    ("lightly 1.6 + torchvision ResNet-18, bf16 + channels_last", "bf16", 60.0, 2.2),
]

# (implementation, precision, record name, printed figure); the records ran back to back.
SAME_PASS = [
    ("tfssl", "mixed_bfloat16", "same_pass_tfssl_bf16", "pretrain_step"),
    (
        "PyTorch 2.13 (benchmarks/peers/pytorch_simclr_step.py)",
        "bf16 autocast, channels_last",
        "same_pass_pytorch_bf16",
        "pytorch_pretrain_step",
    ),
    (
        "PyTorch 2.13 + torch.compile",
        "bf16 autocast, channels_last",
        "same_pass_pytorch_bf16_compile",
        "pytorch_pretrain_step",
    ),
    ("tfssl", "float32", "same_pass_tfssl_fp32", "pretrain_step"),
    ("PyTorch 2.13", "float32, channels_last", "same_pass_pytorch_fp32", "pytorch_pretrain_step"),
    ("tfssl, `--jit_compile` (XLA)", "mixed_bfloat16", "same_pass_tfssl_bf16_xla", "pretrain_step"),
    (
        "tfssl, `--matmul_conv_grads=false` (oneDNN's weight gradients everywhere)",
        "mixed_bfloat16",
        "same_pass_tfssl_bf16_native_conv_grads",
        "pretrain_step",
    ),
]
EARLIER_MACHINE = (
    "amd_epyc"  # benchmarks/results/amd_epyc/: the same figures from an earlier machine
)


def same_pass_table(records, machine_note):
    rows = [
        (label, precision, records[name], figure)
        for label, precision, name, figure in SAME_PASS
        if name in records
    ]
    if not rows:
        return []
    lines = [
        "| implementation | precision | images/s | step time | peak RSS | finished |",
        "|---|---|---|---|---|---|",
    ]
    for label, precision, record, figure in rows:
        step = printed(record, figure)
        lines.append(
            f"| {label} | {precision} | **{step['images_per_s']}** | {step['step_time_s']} s | "
            f"{step['peak_rss_gib']} GiB | {record['date'][:10]} {record['date'][11:16]} |"
        )
    machine = rows[0][2]["machine"]
    return [f"On {machine['cpu']} ({machine['cores']} cores){machine_note}:", ""] + lines + [""]


def throughput_targets(records):
    """The issue's targets against the same-pass figures: >= 74 images/s and >= 1.15x the best PyTorch bf16,
    with peak RSS <= 2 GiB."""
    if "same_pass_tfssl_bf16" not in records:
        return []
    ours = printed(records["same_pass_tfssl_bf16"], "pretrain_step")
    torch_bf16 = [
        printed(records[n], "pytorch_pretrain_step")["images_per_s"]
        for n in ("same_pass_pytorch_bf16", "same_pass_pytorch_bf16_compile")
        if n in records
    ]
    speed, rss = ours["images_per_s"], ours["peak_rss_gib"]
    needed = max([74.0] + [1.15 * t for t in torch_bf16])
    text = (
        f"Target: >= 74 images/s and >= 1.15x the best PyTorch bf16 figure of the same pass, so >= {needed:.1f} "
        f"images/s here, with peak RSS <= 2 GiB. Measured {speed} images/s "
        f"({'meets it' if speed >= needed else f'short by {needed - speed:.1f} images/s, {100 * (1 - speed / needed):.0f}%'})"
        f" with {rss} GiB peak RSS ({'meets it' if rss <= 2 else f'{rss - 2:.2f} GiB over'})."
    )
    if torch_bf16:
        text += f" Against the best PyTorch bf16 figure alone: {speed / max(torch_bf16):.2f}x."
    return [text, ""]


def throughput_section(records):
    lines = [
        "## Pretrain step throughput (issue #9)",
        "",
        "ResNet-18 with the CIFAR stem, 32x32x3 synthetic images, batch 256 (512 views per step), NT-Xent, "
        "3-layer projection head; tfssl with LARS through the trainer's own step function (`--mode=benchmark`), "
        "`benchmarks/peers/pytorch_simclr_step.py` the same network, loss and batch in plain PyTorch (SGD). "
        "10 warm-up steps, median of 5 timed calls. Peak RSS is the whole process's. The rows of one "
        "table ran one after the other.",
        "",
    ]
    lines += same_pass_table(records, "")
    lines += throughput_targets(records)
    earlier = load_records(os.path.join(HERE, "results", EARLIER_MACHINE))
    lines += same_pass_table(earlier, ", an earlier pass on another machine (AVX512-BF16, no AMX)")
    lines += [
        "Peers as reported in issue #9 (a 2-core Sapphire Rapids with AMX, another pass; context only):",
        "",
        "| peer | precision | images/s | peak RSS |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {precision} | {speed} | {rss} GiB |" for name, precision, speed, rss in PEERS
    ]
    lines += [""] + profile_section(records) + memory_profile(records)
    pipeline_name = "throughput_mnist_default"
    if pipeline_name in records:
        step = printed(records[pipeline_name], "pretrain_step")
        pipeline = printed(records[pipeline_name], "input_pipeline")
        lines += [
            "### Input pipeline on the default MNIST config",
            "",
            f"The pretrain step of the default config (ResNet-18 width 0.25, 28 px, batch 256, float32) "
            f"consumes {step['images_per_s']} images/s; the input pipeline alone (decode, two SimCLR views, "
            f"batch) delivers {pipeline['images_per_s']} images/s: **{pipeline['ratio_to_step']}x** the "
            f"step's consumption (target >= 3x).",
            "",
        ]
    memory = ["memory_tfssl_bf16_b64", "memory_tfssl_bf16_b128"]
    lines += command_lines(records, [n for _, _, n, _ in SAME_PASS] + memory + [pipeline_name])
    return lines + onednn_section(records)


ONEDNN = (
    ("onednn_default", "tfssl's default (oneDNN on)"),
    ("onednn_off", "`TF_ENABLE_ONEDNN_OPTS=0`"),
)
PRECISIONS = (
    ("precision_float32_avx2", "float32 (the default)"),
    ("precision_bf16_avx2", "`--precision=mixed_bfloat16`"),
)


def step_rows(labelled_records):
    """One table row per (record, label): the pretrain step's images/s and time, the machine and the date."""
    rows = []
    for record, label in labelled_records:
        step = printed(record, "pretrain_step")
        rows.append(
            f"| {label} | {step['images_per_s']} | {step['step_time_s']} s | {machine_name(record)} "
            f"| {record['date'][:10]} |"
        )
    return rows


def onednn_section(records):
    """The default MNIST pretrain step with and without oneDNN, which TF itself enables only with AVX-512."""
    found = [(records[name], label) for name, label in ONEDNN if name in records]
    if not found:
        return []
    lines = [
        "### oneDNN on CPUs without AVX-512",
        "",
        "TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512; `import tfssl` turns "
        "them on everywhere (unless `TF_ENABLE_ONEDNN_OPTS` is set). The default MNIST pretrain step "
        "(`--mode=benchmark`, as above) both ways. On that machine oneDNN's weight gradients of strided 1x1 "
        "convolutions with fewer than 8 input channels came out wrong, and on an AMD EPYC (Zen 3, AVX2) they "
        "corrupted the heap and aborted the process; tfssl computes those itself as a matrix product, whatever "
        "`--matmul_conv_grads` says (`tfssl/models/conv.py`, checked against a numpy formula in "
        "`tests/test_conv.py`).",
        "",
        "| setting | images/s | step time | machine | date |",
        "|---|---|---|---|---|",
    ]
    lines += step_rows(found) + [""] + command_lines(records, [name for name, _ in ONEDNN])
    return lines + bfloat16_without_avx512(records)


def bfloat16_without_avx512(records):
    """float32 against mixed_bfloat16 on a CPU without AVX-512, where TensorFlow emulates bfloat16."""
    if not all(name in records for name, _ in PRECISIONS):
        return []
    steps = {name: printed(records[name], "pretrain_step") for name, _ in PRECISIONS}
    slowdown = (
        steps["precision_bf16_avx2"]["step_time_s"] / steps["precision_float32_avx2"]["step_time_s"]
    )
    lines = [
        "The same step in float32 and in mixed_bfloat16 on a CPU without AVX-512, one after the other. "
        "oneDNN computes bfloat16 only with AVX-512; without it TensorFlow falls back to generic kernels "
        f"and the step took **{slowdown:.1f}x** as long as in float32. tfssl warns when it sees "
        "`--precision=mixed_bfloat16` on such a CPU (the SimCLR recipe in `configs/` uses it, measured on "
        "AVX-512 machines).",
        "",
        "| precision | images/s | step time | machine | date |",
        "|---|---|---|---|---|",
    ]
    lines += step_rows([(records[name], label) for name, label in PRECISIONS])
    return lines + [""] + command_lines(records, [name for name, _ in PRECISIONS])


def memory_profile(records):
    """Peak RSS split into TensorFlow's import, the built model and the memory per image in flight."""
    points = []
    for name in ("memory_tfssl_bf16_b64", "memory_tfssl_bf16_b128", "same_pass_tfssl_bf16"):
        if name in records:
            step = printed(records[name], "pretrain_step")
            if "peak_rss_after_import_gib" in step:
                points.append(step)
    if len(points) < 2:
        return []
    points.sort(key=lambda p: p["train_batch_size"])
    first, last = points[0], points[-1]
    per_image_mib = (
        1024
        * (last["peak_rss_gib"] - first["peak_rss_gib"])
        / (last["train_batch_size"] - first["train_batch_size"])
    )
    lines = [
        "### Where the memory goes (mixed_bfloat16)",
        "",
        "| batch | RSS after importing TensorFlow | after building model and optimizer | peak during steps |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {p['train_batch_size']} | {p['peak_rss_after_import_gib']} GiB | {p['peak_rss_after_build_gib']} GiB "
        f"| {p['peak_rss_gib']} GiB |"
        for p in points
    ]
    lines += [
        "",
        f"The peak grows by {per_image_mib:.1f} MiB per image (two 32x32 views) in the batch: the "
        "activations that backpropagation keeps, in bfloat16. Counting by hand, a ResNet-18 view keeps "
        "about 1.2 million values (each convolution's output for batch norm's gradient and each ReLU's "
        "output, the least any framework keeps without recomputing), 2.4 MB in bfloat16, so 512 views "
        f"hold about 1.2 GiB; importing TensorFlow alone takes {first['peak_rss_after_import_gib']} GiB. "
        "Meeting 2 GiB at batch 256 would need recomputing activations in the backward pass (slower), or "
        "a smaller batch.",
        "",
    ]
    return lines


PROFILES = (
    ("profile_r18_b256_bf16", "matrix-product weight gradients (default)"),
    ("profile_r18_b256_bf16_native_conv_grads", "`--matmul_conv_grads=false`"),
)


def profile_section(records):
    """The op-time and live-memory tables of benchmarks/profile_step.py."""
    found = [
        (printed(records[name], "step_profile"), label)
        for name, label in PROFILES
        if name in records
    ]
    if not found:
        return []
    lines = [
        "### What the profiler shows",
        "",
        "`benchmarks/profile_step.py` traces the same step with `tf.profiler` and reads the trace back. Self "
        "time of each op type per step, summed over threads (two ops can run at once on the two cores, so "
        "the column adds up to more than the step time):",
        "",
        "| op type | " + " | ".join(label for _, label in found) + " |",
        "|---" * (len(found) + 1) + "|",
    ]
    seconds = {}
    for profile, _ in found:
        for name, time_s, _ in profile["top_ops"][:10]:
            seconds[name] = max(seconds.get(name, 0.0), time_s)
    top = sorted(seconds, key=seconds.get, reverse=True)
    for op in top:
        cells = []
        for profile, _ in found:
            entry = next((e for e in profile["top_ops"] if e[0] == op), None)
            cells.append(f"{entry[1]:.3f} s ({entry[2]:.0f}%)" if entry else "")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines.append(
        "| step time (profiled) | "
        + " | ".join(f"{p['step_time_s']:.3f} s" for p, _ in found)
        + " |"
    )
    lines += [
        "",
        "Tensors alive when TensorFlow's allocator peaked, by the op that made them (GiB):",
        "",
        "| made by | " + " | ".join(label for _, label in found) + " |",
        "|---" * (len(found) + 1) + "|",
    ]
    for kind, _ in found[0][0]["live_at_peak_gib"][:8]:
        cells = [
            next((f"{size:.3f}" for k, size in p["live_at_peak_gib"] if k == kind), "")
            for p, _ in found
        ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append(
        "| all (allocator peak) | "
        + " | ".join(f"{p['allocator_peak_gib']:.3f}" for p, _ in found)
        + " |"
    )
    return lines + [""] + command_lines(records, [name for name, _ in PROFILES])
