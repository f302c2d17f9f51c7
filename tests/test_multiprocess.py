"""Real processes: SIGKILL at an arbitrary moment and resume; two workers on loopback."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, tiny_config
from tfssl.train import launch

TINY = [
    "--mode=pretrain",
    "--width_multiplier=0.0625",
    "--proj_out_dim=16",
    "--train_batch_size=16",
    "--eval_steps=1",
    "--log_every_secs=0",
    "--precision=float32",  # compared bit for bit; auto would pick bfloat16 on some CPUs
]


def command(gray_folder, model_dir, *extra):
    return [
        sys.executable,
        os.path.join(REPO, "run.py"),
        *TINY,
        f"--dataset=folder:{gray_folder}",
        f"--model_dir={model_dir}",
        *extra,
    ]


def model_weights(prefix):
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n, _ in tf.train.list_variables(prefix) if n.startswith("model/")]
    return {n: reader.get_tensor(n) for n in names}


def latest_step(model_dir):
    prefix = tf.train.latest_checkpoint(str(model_dir))
    return int(prefix.rsplit("-", 1)[1]) if prefix else 0


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_weights(gray_folder, tmp_path):
    extra = ["--train_steps=14", "--checkpoint_steps=1", "--steps_per_loop=1", "--deterministic"]
    whole = subprocess.Popen(
        command(gray_folder, tmp_path / "whole", *extra), stderr=subprocess.PIPE, text=True
    )
    victim = subprocess.Popen(
        command(gray_folder, tmp_path / "killed", *extra), stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 240
    while latest_step(tmp_path / "killed") < 4 and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # an arbitrary moment, most likely inside a step or a save
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = latest_step(tmp_path / "killed")
    assert 4 <= killed_at < 14, "the run should have been killed mid-way"
    rerun = subprocess.run(
        command(gray_folder, tmp_path / "killed", *extra),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (
        f"resumed from {tmp_path / 'killed'}/ckpt-{killed_at} at step {killed_at}" in rerun.stderr
    )
    assert whole.wait(timeout=300) == 0
    expected = model_weights(str(tmp_path / "whole" / "ckpt-14"))
    got = model_weights(str(tmp_path / "killed" / "ckpt-14"))
    assert expected.keys() == got.keys() and len(expected) > 10
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_match_two_local_replicas_and_only_the_chief_writes(gray_folder, tmp_path):
    extra = [
        "--train_steps=3",
        "--steps_per_loop=3",
        "--optimizer=momentum",
        "--learning_rate=0.1",
        "--strategy=multi_worker",
    ]
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            ),
        )
        processes.append(
            subprocess.Popen(
                command(gray_folder, tmp_path / "multi", *extra),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300) for p in processes]
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]

    reference = tiny_config(
        mode="pretrain",
        dataset=f"folder:{gray_folder}",
        model_dir=str(tmp_path / "local"),
        train_steps=3,
        steps_per_loop=3,
        optimizer="momentum",
        learning_rate=0.1,
        eval_steps=1,
    )
    from tfssl.train.distribute import make_strategy

    launch.train(reference, strategy=make_strategy("mirrored"))

    multi = model_weights(str(tmp_path / "multi" / "ckpt-3"))
    local = model_weights(str(tmp_path / "local" / "ckpt-3"))
    assert multi.keys() == local.keys()
    for name in multi:
        np.testing.assert_allclose(multi[name], local[name], atol=1e-5, err_msg=name)
    written = sorted(os.listdir(tmp_path / "multi"))
    assert "flags.json" in written and "result.json" in written and "train" in written
    assert [n for n in written if n.startswith("ckpt-3")], written
    assert len(os.listdir(tmp_path / "multi" / "train")) == 1  # one event file: the chief's
