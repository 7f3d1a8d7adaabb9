"""Helpers shared by the end-to-end training tests: run `qgfd` in a fresh process (optionally
killed or failed from inside at a chosen moment) and compare two run folders bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from qgfd_diffusion.train.logs import TIMING_FIELDS

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONHASHSEED": "0",
}
RUN_TIMEOUT = 600  # seconds; a smoke run takes well under a minute

# Runs the CLI in a fresh process. KILL_AT SIGKILLs it from inside, deterministically:
#   step:N          at the start of optimiser step N
#   write:N:PART    while checkpoint N writes PART
#   encoder         while the tiny T5 encoder is built (model saved, tokenizer not yet)
#   fit:N           at the N-th step of fitting the text adapter's rounding head
# FAIL_AT="write:N:PART:ERRNO" makes the checkpoint writer raise OSError(ERRNO) instead.
# PAUSE_AT="step:N:GATE" waits at the start of optimiser step N, after writing GATE.paused, until
# the file GATE exists (what a second process does meanwhile is then certain).
DRIVER = r"""
import errno, os, signal, sys, time
kill_at, fail_at = os.environ.get("KILL_AT", ""), os.environ.get("FAIL_AT", "")
pause_at = os.environ.get("PAUSE_AT", "")
def kill():
    os.kill(os.getpid(), signal.SIGKILL)
if pause_at:
    from qgfd_diffusion.train import trainer
    _, step, gate = pause_at.split(":", 2)
    original = trainer.Trainer._train_step
    def paused_step(self, *args, **kwargs):
        if self.state.global_step + 1 == int(step) and not os.path.exists(gate):
            open(gate + ".paused", "w").close()
            while not os.path.exists(gate):
                time.sleep(0.05)
        return original(self, *args, **kwargs)
    trainer.Trainer._train_step = paused_step
if kill_at.startswith("step:"):
    from qgfd_diffusion.train import trainer
    target = int(kill_at.split(":")[1])
    original_step = trainer.Trainer._train_step
    def train_step(self, *args, **kwargs):
        if self.state.global_step + 1 == target:
            kill()
        return original_step(self, *args, **kwargs)
    trainer.Trainer._train_step = train_step
if kill_at.startswith("write:") or fail_at:
    from qgfd_diffusion.train import checkpoint
    _, step, part, *code = (kill_at or fail_at).split(":")
    original_part = checkpoint.save_part
    def save_part(folder, name, state):
        if name == part and folder.name.startswith(f".tmp-step-{int(step):08d}"):
            if code:
                raise OSError(int(code[0]), os.strerror(int(code[0])))
            kill()
        return original_part(folder, name, state)
    checkpoint.save_part = save_part
if kill_at == "encoder":
    import transformers
    original_save = transformers.T5ForConditionalGeneration.save_pretrained
    def save_model(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        kill()
    transformers.T5ForConditionalGeneration.save_pretrained = save_model
if kill_at.startswith("fit:"):
    from qgfd_diffusion.adapters.text import TextAdapter
    target, calls = int(kill_at.split(":")[1]), []
    original_loss = TextAdapter._decoder_loss
    def decoder_loss(self, example):
        calls.append(1)
        if len(calls) == target:
            kill()
        return original_loss(self, example)
    TextAdapter._decoder_loss = decoder_loss
from qgfd_diffusion.cli import main
sys.exit(main(sys.argv[1:]))
"""
LAUNCHER = (sys.executable, "-c", DRIVER)


def start(*args, pause_at: str) -> subprocess.Popen:
    """``qgfd ARGS`` in a fresh process that pauses as ``PAUSE_AT`` says; not waited for."""
    env = {**ENV, "KILL_AT": "", "FAIL_AT": "", "PAUSE_AT": pause_at}
    return subprocess.Popen(
        [*LAUNCHER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def qgfd(
    *args, kill_at: str = "", fail_at: str = "", launcher=LAUNCHER
) -> subprocess.CompletedProcess:
    env = {**ENV, "KILL_AT": kill_at, "FAIL_AT": fail_at, "PAUSE_AT": ""}
    return subprocess.run(
        [*launcher, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=RUN_TIMEOUT,
    )


def train_command(out: Path, *extra) -> list[str]:
    return ["train", str(SMOKE), "--output-dir", str(out), "--no-progress", *map(str, extra)]


def train(out: Path, *extra, **kwargs) -> subprocess.CompletedProcess:
    return qgfd(*train_command(out, *extra), **kwargs)


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS} for row in rows]


def weights(run: Path, folder: str = "backbone") -> dict:
    return load_file(str(run / "final" / folder / "diffusion_pytorch_model.safetensors"))


def run_contents(run: Path) -> dict[str, object]:
    """What must be equal between a resumed run and an uninterrupted one: the logs without
    timing fields, every safetensors file of final/ and every file of samples/ (bytes).
    final/'s JSON files are left out: they name the run folder."""
    contents: dict[str, object] = {
        "metrics.jsonl": metrics(run),
        "validation.jsonl": (run / "validation.jsonl").read_text(),
    }
    files = sorted((run / "final").rglob("*.safetensors")) + sorted((run / "samples").rglob("*"))
    for path in files:
        if path.is_file():
            contents[path.relative_to(run).as_posix()] = path.read_bytes()
    return contents


def run_differences(run: Path, reference: Path) -> list[str]:
    """Names of what differs between two finished runs (empty: bitwise equal)."""
    ours, theirs = run_contents(run), run_contents(reference)
    return [name for name in sorted(set(ours) | set(theirs)) if ours.get(name) != theirs.get(name)]
