"""Every Python code block of the README runs, with hub names swapped for tiny local folders.

The blocks are executed as written except for ``SWAPS``: hub model ids become tiny random
checkpoints built offline, and the trained run the README loads is a shortened smoke run.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from qgfd_diffusion.train.config import load_run_config
    from qgfd_diffusion.train.trainer import Trainer

    steps = [
        "phases.0.steps=3",
        "phases.1.steps=3",
        "phases.0.fit_steps=2",
        "sample.num_inference_steps=2",
    ]
    config = load_run_config(REPO / "configs" / "smoke.yaml", steps)
    return Trainer(config, tmp_path_factory.mktemp("readme") / "smoke", progress=False).fit()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 4  # attention, transformers, diffusion models, loading a run


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tiny_dir, smoke_run):
    swaps = {
        '"bert-base-uncased"': repr(str(tiny_dir("bert"))),
        '"t5-small"': repr(str(tiny_dir("t5"))),
        '"runs/smoke/final"': repr(str(smoke_run)),
    }
    code = BLOCKS[index]
    for old, new in swaps.items():
        code = code.replace(old, new)
    exec(compile(code, f"<README.md python block {index}>", "exec"), {"__name__": "readme"})
