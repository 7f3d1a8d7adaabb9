"""Checkpoints that detect damage and survive a full disk: every file of a checkpoint cut short
or with a flipped byte is caught (fallback or error, never loaded), --resume falls back to the
newest verified checkpoint and ends bitwise equal, and a refused write keeps the previous one."""

import errno
import shutil
from pathlib import Path

import pytest
import torch
from cli_runs import run_differences, train

from qgfd_diffusion.cli import main as cli_main
from qgfd_diffusion.train import checkpoint
from qgfd_diffusion.train.checkpoint import (
    COMPLETE_MARKER,
    CheckpointDamaged,
    CheckpointWriteError,
    choose_resume_checkpoint,
    complete_checkpoints,
    load_part,
    save_checkpoint,
    verify_checkpoint,
)
from qgfd_diffusion.train.manifest import checkpoint_files

MID_PHASE = "step-00000025"  # the reference run's mid-phase checkpoint: every part is in it
PARTS = ("backbone", "ema", "rng", "trainer", "optimizer", "lr_scheduler", "data")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def checkpoint_file_names(reference_run) -> list[str]:
    names = [*checkpoint_files(reference_run / "checkpoints" / MID_PHASE), COMPLETE_MARKER]
    assert len(names) > 2 * len(PARTS) + 4  # the parts, the adapters' files, the marker
    return names


@pytest.mark.slow
@pytest.mark.parametrize("damage", [truncate, flip_byte])
def test_every_damaged_file_is_detected_and_passed_over(
    reference_run, checkpoint_file_names, tmp_path, damage
):
    source = reference_run / "checkpoints" / MID_PHASE
    for name in checkpoint_file_names:
        checkpoints = tmp_path / name.replace("/", "_") / "checkpoints"
        shutil.copytree(source, checkpoints / "step-00000020")  # an older intact copy
        shutil.copytree(source, checkpoints / MID_PHASE)
        damage(checkpoints / MID_PHASE / name)
        part = name.split(".")[0]
        if part in PARTS:  # loading the damaged part directly refuses too
            with pytest.raises(CheckpointDamaged):
                load_part(checkpoints / MID_PHASE, part)
        choice = choose_resume_checkpoint(checkpoints)
        assert choice.folder == checkpoints / "step-00000020", name
        assert choice.damaged == [checkpoints / MID_PHASE]
        assert len(choice.notes) == 1 and MID_PHASE in choice.notes[0], choice.notes
        named = name if name != COMPLETE_MARKER else "marker"
        assert named in choice.notes[0], choice.notes
        assert (checkpoints / f"{MID_PHASE}.damaged").is_dir()


@pytest.mark.slow
def test_resume_skips_a_damaged_newest_checkpoint_and_ends_bitwise_equal(reference_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    for produced in ("final", "samples"):  # the resumed run must make them again
        shutil.rmtree(out / produced)
    truncate(out / "checkpoints" / "step-00000030" / "backbone.safetensors")
    resumed = train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    skipped = [line for line in resumed.stderr.splitlines() if "skipping" in line]
    assert len(skipped) == 1, resumed.stderr[-3000:]
    assert "step-00000030" in skipped[0] and "backbone.safetensors has" in skipped[0]
    assert "resuming from" in resumed.stderr and "step-00000025" in resumed.stderr
    assert run_differences(out, reference_run) == []
    verify_checkpoint(out / "checkpoints" / "step-00000030")  # written again, whole


@pytest.fixture
def quiet_cli_logger():
    """cli_main("train", ...) points the package logger at stderr; put it back afterwards."""
    import logging

    logger = logging.getLogger("qgfd_diffusion")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers, logger.level, logger.propagate = saved


@pytest.mark.slow
def test_resume_with_every_checkpoint_damaged_exits_2(
    reference_run, tmp_path, capsys, quiet_cli_logger
):
    out = tmp_path / "run"
    shutil.copytree(reference_run, out)
    for folder in complete_checkpoints(out / "checkpoints"):
        flip_byte(folder / "trainer.json")
    smoke = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    code = cli_main(["train", str(smoke), "--output-dir", str(out), "--no-progress", "--resume"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert "error: no verified checkpoint left" in err.splitlines()[-1], err
    assert sum("skipping" in line for line in err.splitlines()) == 2, err


# -- the writer: disk trouble, verification before pruning, legacy markers -------------------


def _parts(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "trainer": {"step": int(value)}}


def _adapter_folder(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_refused_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code):
    folders = {"adapters/x": _adapter_folder}
    first = save_checkpoint(tmp_path, 1, _parts(1.0), keep=1, folders=folders)

    def refuse(tensors, filename):
        raise OSError(code, "injected")

    monkeypatch.setattr(checkpoint, "save_file", refuse)
    with pytest.raises(CheckpointWriteError) as error:
        save_checkpoint(tmp_path, 2, _parts(2.0), keep=1, folders=folders)
    assert error.value.errno == code
    assert "step-00000002" in str(error.value) and "(step-00000001) is intact" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]  # no temp left
    verify_checkpoint(first)
    assert torch.equal(load_part(first, "model")["w"], torch.ones(3))


def test_the_last_verified_checkpoint_stays_until_a_newer_one_verifies(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, 1, _parts(1.0), keep=1)

    def damaged_on_disk(folder):
        raise CheckpointDamaged(folder, "model.safetensors does not match its sha256")

    monkeypatch.setattr(checkpoint, "verify_checkpoint", damaged_on_disk)
    with pytest.raises(CheckpointWriteError) as error:
        save_checkpoint(tmp_path, 2, _parts(2.0), keep=1)
    assert error.value.errno == errno.EIO
    assert first.is_dir()  # keep=1, yet not pruned: the newer one never verified
    monkeypatch.undo()
    second = save_checkpoint(tmp_path, 3, _parts(3.0), keep=1)
    assert complete_checkpoints(tmp_path) == [second]


def test_a_verified_checkpoint_is_never_rewritten(tmp_path):
    save_checkpoint(tmp_path, 1, _parts(1.0))
    with pytest.raises(ValueError, match="never rewritten"):
        save_checkpoint(tmp_path, 1, _parts(5.0))
    assert torch.equal(load_part(tmp_path / "step-00000001", "model")["w"], torch.ones(3))


def test_a_legacy_checkpoint_loads_unverified_with_a_note(tmp_path):
    folder = save_checkpoint(tmp_path, 7, _parts(7.0))
    (folder / COMPLETE_MARKER).write_text("7")  # what checkpoints said before manifests
    choice = choose_resume_checkpoint(tmp_path)
    assert choice.folder == folder and choice.damaged == []
    assert choice.notes == [
        "step-00000007 has no manifest (written before checkpoints were verified): "
        "loading it unverified"
    ]
    assert load_part(folder, "trainer") == {"step": 7}


def test_unfinished_writes_are_removed_with_a_note(tmp_path):
    save_checkpoint(tmp_path, 1, _parts(1.0))
    (tmp_path / ".tmp-step-00000002-123").mkdir()
    (tmp_path / "step-00000003").mkdir()  # renamed but never marked (an older writer)
    choice = choose_resume_checkpoint(tmp_path)
    assert choice.folder == tmp_path / "step-00000001"
    assert [note.split(":")[0] for note in choice.notes] == [
        "removed .tmp-step-00000002-123",
        "removed step-00000003",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001"]


@pytest.mark.slow
def test_disk_full_mid_checkpoint_exits_3_with_one_line(tmp_path):
    """The resume that follows starts from the intact checkpoint, as after a kill mid-write
    (test_train_cli's write:20:optimizer case ends bitwise equal)."""
    out = tmp_path / "run"
    failed = train(out, fail_at=f"write:10:optimizer:{errno.ENOSPC}")
    assert failed.returncode == 3, failed.stderr[-3000:]
    errors = [line for line in failed.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert errors[0].startswith("qgfd train: error: could not write checkpoint step-00000010")
    assert "No space left on device" in errors[0] and "(step-00000005) is intact" in errors[0]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000005"]
    choice = choose_resume_checkpoint(out / "checkpoints")
    assert choice.folder == out / "checkpoints" / "step-00000005" and choice.notes == []
