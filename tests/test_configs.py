"""Every recipe in configs/ parses into a valid Config and documents its command."""

import dataclasses
import glob
import os
import sys

import pytest

from tests.conftest import REPO
from tfssl.config import Config

sys.path.insert(0, REPO)
import run  # noqa: E402

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.cfg")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_recipe_parses_and_documents_itself(path):
    text = open(path).read()
    assert text.startswith("# ")
    assert f"python run.py --flagfile=configs/{os.path.basename(path)}" in text
    run.FLAGS.unparse_flags()
    run.FLAGS(["run.py", f"--flagfile={path}"])
    given = {
        f.name: run.FLAGS[f.name].value
        for f in dataclasses.fields(Config)
        if run.FLAGS[f.name].present
    }
    cfg = Config.for_job(given)
    assert cfg.model_dir.startswith("runs/")
    run.FLAGS.unparse_flags()


def test_there_are_recipes():
    assert len(CONFIGS) >= 4
