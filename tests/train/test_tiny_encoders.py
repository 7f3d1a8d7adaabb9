"""Tiny encoders a run builds for `tiny:KIND`: the same texts and seed give the same bytes, and
a build that stops half way leaves nothing a resumed run could reuse."""

import hashlib
from pathlib import Path

import pytest

from qgfd_diffusion.adapters import build_tiny_encoder
from qgfd_diffusion.data import DataConfig, load_phase_data
from qgfd_diffusion.train import phases
from qgfd_diffusion.train.phases import resolve_encoder

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@pytest.fixture(scope="module")
def shakespeare():
    """Enough real text that the Unigram trainer's scores tie and vary in their last bits."""
    return load_phase_data(DataConfig(source="bundled", name="shakespeare", max_items=400), 0)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_t5_build_is_deterministic(shakespeare, tmp_path):
    texts = shakespeare.train["text"]
    builds = [build_tiny_encoder("t5", tmp_path / f"b{i}", seed=0, texts=texts) for i in range(3)]
    first = _digests(builds[0])
    assert set(TOKENIZER_FILES) <= set(first) and "model.safetensors" in first
    assert all(_digests(build) == first for build in builds[1:])
    other = build_tiny_encoder("t5", tmp_path / "other", texts=texts[: len(texts) // 2])
    assert _digests(other)["tokenizer.json"] != first["tokenizer.json"]  # texts do matter


def test_a_half_built_encoder_is_never_reused(shakespeare, tmp_path, monkeypatch):
    real_build = phases.build_tiny_encoder

    def dies_half_way(kind, out_dir, **kwargs):
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "config.json").write_text("{}")  # what a killed build leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(phases, "build_tiny_encoder", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        resolve_encoder("tiny:t5", tmp_path, 0, shakespeare.train)
    assert not (tmp_path / "encoders" / "t5").exists()
    monkeypatch.setattr(phases, "build_tiny_encoder", real_build)
    folder = Path(resolve_encoder("tiny:t5", tmp_path, 0, shakespeare.train))
    assert folder == tmp_path / "encoders" / "t5"
    assert all((folder / name).is_file() for name in TOKENIZER_FILES)
    assert [p.name for p in folder.parent.iterdir()] == ["t5"]  # the leftover is gone
