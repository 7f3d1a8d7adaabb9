"""End to end: `qgfd train` / `qgfd sample` on the smoke config, exact resume after SIGKILL,
2-process data parallelism, config validation and CLI errors."""

import json
import pickle
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_runs import (
    RUN_TIMEOUT,
    SMOKE,
    metrics,
    qgfd,
    run_differences,
    start,
    train,
    train_command,
    weights,
)

from qgfd_diffusion.cli import main as cli_main
from qgfd_diffusion.configio import ConfigError, load_yaml
from qgfd_diffusion.train.checkpoint import COMPLETE_MARKER, complete_checkpoints, latest_checkpoint
from qgfd_diffusion.train.config import run_config_from_dict
from qgfd_diffusion.train.run_lock import LOCK_FILE


@pytest.mark.slow
def test_smoke_config_trains_end_to_end_and_samples_decode(reference_run, tmp_path):
    rows = metrics(reference_run)
    assert [row["step"] for row in rows] == list(range(1, 31))
    assert {row["phase"] for row in rows} == {"text", "image"}
    assert all({"loss", "lr", "grad_norm"} <= set(row) for row in rows)
    validation = [
        json.loads(line) for line in (reference_run / "validation.jsonl").read_text().splitlines()
    ]
    assert [(row["after_phase"], row["phase"]) for row in validation] == [
        ("text", "text"),
        ("image", "text"),
        ("image", "image"),
    ]
    summary = json.loads((reference_run / "final" / "train_summary.json").read_text())
    assert summary["global_step"] == 30 and summary["ranks_in_sync"]
    for modality, decoded in (("text", "samples.txt"), ("image", "samples.png")):
        out = tmp_path / modality
        result = qgfd(
            "sample",
            "--checkpoint",
            reference_run,
            "--modality",
            modality,
            "--num-samples",
            4,
            "--steps",
            4,
            "--out",
            out,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert (out / "latents.safetensors").is_file() and (out / decoded).stat().st_size > 0
        assert json.loads((out / "sample_config.json").read_text())["modality"] == modality
    lines = (tmp_path / "text" / "samples.txt").read_text().splitlines()
    assert len(lines) == 4


@pytest.mark.slow
def test_same_seed_gives_the_same_bytes(reference_run, tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"s{i}"
        assert (
            qgfd(
                "sample",
                "--checkpoint",
                reference_run,
                "--modality",
                "image",
                "--num-samples",
                3,
                "--steps",
                3,
                "--seed",
                7,
                "--out",
                out,
            ).returncode
            == 0
        )
        outs.append(out)
    for name in ("latents.safetensors", "samples.png", "sample_config.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


# step:13 mid-step; write:20:optimizer mid-checkpoint; write:15:trainer while the phase-boundary
# checkpoint is written (it never appears: resume from step 10 redoes steps 11-15 and validation).
@pytest.mark.slow
def test_a_second_trainer_on_a_live_run_folder_exits_2_and_the_first_finishes_bitwise(
    reference_run, tmp_path
):
    """Two `qgfd train` on one folder: the second is refused at once, with or without --resume
    (which, unlocked, would resume from step 5 and cut the first run's metrics.jsonl back)."""
    out, gate = tmp_path / "run", tmp_path / "go"
    first = start(*train_command(out), pause_at=f"step:8:{gate}")
    deadline = time.monotonic() + RUN_TIMEOUT
    while not gate.with_name("go.paused").exists():  # the first run holds the folder at step 8
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.1)
    for extra in ((), ("--resume",)):
        second = train(out, *extra)
        errors = [line for line in second.stderr.splitlines() if line.startswith("qgfd train")]
        assert second.returncode == 2 and len(errors) == 1, second.stderr[-2000:]
        assert f"{out} is in use by another training process (pid {first.pid} on host" in errors[0]
    gate.touch()
    _, stderr = first.communicate(timeout=RUN_TIMEOUT)
    assert first.returncode == 0, stderr[-3000:]
    assert run_differences(out, reference_run) == []  # every step logged once, as a lone run


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["step:13", "write:20:optimizer", "write:15:trainer"])
def test_sigkill_then_resume_is_bitwise_identical(reference_run, tmp_path, kill_at):
    out = tmp_path / "run"
    killed = train(out, kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    newest = latest_checkpoint(out / "checkpoints")
    assert newest is not None and (newest / COMPLETE_MARKER).is_file()
    if kill_at == "write:15:trainer":  # a checkpoint appears whole or not at all
        assert newest.name == "step-00000010"
    assert (out / LOCK_FILE).is_file()  # the dead run's lock file stays; its flock does not
    resumed = train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_differences(out, reference_run) == []
    assert not any(p.name.startswith(".tmp") for p in (out / "checkpoints").iterdir())


@pytest.mark.slow
def test_kills_before_the_first_checkpoint_restart_from_the_beginning(reference_run, tmp_path):
    """Killed while the tiny encoder is half written, then while the rounding head is fitted
    (the issue's report): nothing to resume yet, so --resume starts over, bit for bit."""
    out = tmp_path / "run"
    assert train(out, "--resume", kill_at="encoder").returncode == -9
    assert not (out / "encoders" / "t5").exists()  # the half-built one stayed a temp folder
    assert train(out, "--resume", kill_at="fit:10").returncode == -9
    assert (out / "encoders" / "t5" / "tokenizer.json").is_file()
    assert not complete_checkpoints(out / "checkpoints")
    resumed = train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "no complete checkpoint" in resumed.stderr and "starting from the beginning" in (
        resumed.stderr
    )
    assert run_differences(out, reference_run) == []
    tokenizer = Path("encoders/t5/tokenizer.json")  # deterministic build: the same bytes
    assert (out / tokenizer).read_bytes() == (reference_run / tokenizer).read_bytes()


@pytest.mark.slow
def test_newest_complete_checkpoint_always_loads(reference_run):
    from qgfd_diffusion.train.checkpoint import load_part

    found = complete_checkpoints(reference_run / "checkpoints")
    assert 1 <= len(found) <= 2  # keep_checkpoints: 2
    state = load_part(found[-1], "backbone")
    assert all(torch.isfinite(t).all() for t in state.values())


@pytest.mark.slow
def test_two_process_data_parallel_matches_single_process(reference_run, tmp_path):
    out = tmp_path / "ddp"
    launcher = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "qgfd_diffusion.cli",
    )
    result = qgfd("train", SMOKE, "--output-dir", out, "--no-progress", launcher=launcher)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((out / "final" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_in_sync"]
    ddp, single = metrics(out), metrics(reference_run)
    assert [r["step"] for r in ddp] == [r["step"] for r in single]
    for a, b in zip(ddp, single, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    ours, theirs = weights(out), weights(reference_run)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize(
    "mutation,path",
    [
        (lambda d: d["phases"][0].pop("steps"), "phases[0].steps: missing required key"),
        (
            lambda d: d["phases"][1].__setitem__("batch_sise", 4),
            "phases[1].batch_sise: unknown key",
        ),
        (lambda d: d["model"].__setitem__("d_modle", 4), "model.d_modle: unknown key"),
        (lambda d: d["phases"][0].__setitem__("lr", "fast"), "phases[0].lr: expected float"),
        (lambda d: d["train"].__setitem__("ema_decay", 1.5), "train.ema_decay: must be in [0, 1]"),
        (
            lambda d: d["phases"][1]["data"].__setitem__("source", "web"),
            "phases[1].data.source: must be one of",
        ),
        (lambda d: d["model"].__setitem__("attention", "flash"), "model.attention: must be one of"),
        (lambda d: d.__setitem__("sedd", 1), "sedd: unknown key"),
        (
            lambda d: d["phases"][0].__setitem__("batch_size", 0),
            "phases[0].batch_size: must be > 0",
        ),
    ],
)
def test_config_mutations_are_rejected_naming_the_dotted_path(mutation, path):
    data = load_yaml(SMOKE)
    mutation(data)
    with pytest.raises(ConfigError) as error:
        run_config_from_dict(data)
    assert str(error.value).startswith(path), str(error.value)


def test_overrides_reach_the_config_and_bad_ones_are_named():
    config = run_config_from_dict(
        load_yaml(SMOKE), ["phases.1.steps=7", "seed=3", "model.qgfd.alpha=0.2"]
    )
    assert config.phases[1].steps == 7 and config.seed == 3 and config.model.qgfd.alpha == 0.2
    seed_spelling = run_config_from_dict(load_yaml(SMOKE), ["model.qgfd_alpha=0.2"])
    assert seed_spelling.model == config.model  # flat seed keys fold into model.qgfd
    schedule = run_config_from_dict(load_yaml(SMOKE), ["model.schedule.num_train_timesteps=40"])
    assert schedule.model.schedule.num_train_timesteps == 40
    with pytest.raises(ConfigError, match=r"set schedule.num_train_timesteps only"):
        run_config_from_dict(load_yaml(SMOKE), ["model.num_timesteps=40"])  # and in the file
    with pytest.raises(ConfigError, match=r"model.qgfd.alpha: must be in \[0.0, 1.0\]"):
        run_config_from_dict(load_yaml(SMOKE), ["model.qgfd.alpha=1.5"])
    with pytest.raises(ConfigError, match=r"model.qgfd.alpah: unknown key"):
        run_config_from_dict(load_yaml(SMOKE), ["model.qgfd.alpah=0.5"])
    with pytest.raises(ConfigError, match=r"phases.9: list index must be 0..1"):
        run_config_from_dict(load_yaml(SMOKE), ["phases.9.steps=7"])


@pytest.mark.slow
def test_sampling_a_checkpoint_of_another_architecture_is_rejected(reference_run, tmp_path, capsys):
    broken = tmp_path / "model"
    import shutil

    shutil.copytree(reference_run / "final", broken)
    config = json.loads((broken / "backbone" / "config.json").read_text())
    config["d_model"] = 48  # weights no longer fit the architecture
    (broken / "backbone" / "config.json").write_text(json.dumps(config))
    code = cli_main(
        [
            "sample",
            "--checkpoint",
            str(broken),
            "--modality",
            "image",
            "--no-ema",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_resume_refuses_another_model_config_and_a_used_dir_needs_resume(reference_run, tmp_path):
    out = tmp_path / "run"
    assert train(out, kill_at="step:8").returncode == -9
    refused = train(out, "--resume", "--set", "model.d_model=32")
    assert refused.returncode == 2 and "another model config" in refused.stderr
    again = train(out)
    assert again.returncode == 2 and "already holds a run" in again.stderr


@pytest.mark.slow
def test_loading_never_unpickles(reference_run, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    from qgfd_diffusion.sample.run import SampleOptions, load_pipeline, sample_to_folder
    from qgfd_diffusion.train.checkpoint import load_part

    pipe = load_pipeline(reference_run)
    sample_to_folder(
        pipe, "text", tmp_path / "o", SampleOptions(num_samples=2, num_inference_steps=2)
    )
    newest = latest_checkpoint(reference_run / "checkpoints")
    for part in ("backbone", "ema", "rng", "trainer"):
        load_part(newest, part)
