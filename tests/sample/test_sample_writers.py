"""Sample writers: files per modality read back, byte-identical reruns, latents round trip,
errors; the writer and the default condition come from the adapter's declarations."""

import hashlib
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image, ImageSequence

from qgfd_diffusion.adapters import (
    ADAPTERS,
    PatchImageAdapter,
    PatchImageConfig,
    modalities,
    unregister_adapter,
    writer_for,
)
from qgfd_diffusion.adapters.files import GRID_PADDING, VIEW_MIN_SIDE
from qgfd_diffusion.adapters.video import GIF_FRAME_MS
from qgfd_diffusion.sample.pipeline import sampling_condition
from qgfd_diffusion.sample.writers import read_latents, write_decoded, write_latents

B, K_IMG, H, W, T = 3, 3, 6, 5, 4
RATE = 8000


def _levels(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random floats in [0,1] that are exact multiples of 1/255, so uint8 round trips exactly."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=generator).float() / 255


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _decoded(kind: str):
    """A small decoded batch of each modality, as the adapters return them."""
    generator = torch.Generator().manual_seed(1)
    if kind == "image":
        return _levels((B, K_IMG, H, W))
    if kind == "video":
        return _levels((B, T, K_IMG, H, W))
    if kind == "text":
        return ["hello world", "two\nlines", "ünïcode ✓"]
    if kind == "audio":
        return [torch.rand(n, generator=generator) * 2 - 1 for n in (100, 37, 64)]
    if kind == "tabular":
        return pd.DataFrame({"x": [0.1, -2.5, 1e-3], "city": ["a", "b", "c"], "n": [1, 2, 3]})
    if kind == "graph_signal":
        return torch.randn(B, 6, generator=generator)  # one value per node
    raise AssertionError(kind)


def _write(tmp_path: Path, kind: str, decoded=None, **kwargs) -> list[Path]:
    kwargs.setdefault("sampling_rate", RATE if kind == "audio" else None)
    return write_decoded(tmp_path, kind, _decoded(kind) if decoded is None else decoded, **kwargs)


def test_image_writes_grid_and_one_png_per_sample(tmp_path):
    images = _levels((B, K_IMG, H, W))
    files = _write(tmp_path, "image", images)
    nrow = math.ceil(math.sqrt(B))  # 2 per row -> 2 rows
    shape = (2 * (H + GRID_PADDING) + GRID_PADDING, nrow * (W + GRID_PADDING) + GRID_PADDING)
    factor = math.ceil(VIEW_MIN_SIDE / min(shape))  # the viewable copy's integer scale
    assert files[:2] == [tmp_path / "samples.png", tmp_path / f"samples_x{factor}.png"]
    assert [f.relative_to(tmp_path).as_posix() for f in files[2:]] == [
        f"images/sample_{i:03d}.png" for i in range(B)
    ]
    grid = _pixels(files[0])
    assert grid.shape == (*shape, K_IMG)
    view = _pixels(files[1])  # nearest-neighbour: every native pixel becomes a factor^2 block
    assert min(view.shape[:2]) >= VIEW_MIN_SIDE
    np.testing.assert_array_equal(view, grid.repeat(factor, axis=0).repeat(factor, axis=1))
    expected = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # [B,H,W,K]
    for i, path in enumerate(files[2:]):
        np.testing.assert_array_equal(_pixels(path), expected[i])
    top_left = grid[GRID_PADDING : GRID_PADDING + H, GRID_PADDING : GRID_PADDING + W]
    np.testing.assert_array_equal(top_left, expected[0])


def test_image_clamps_out_of_range_and_writes_grey(tmp_path):
    images = torch.tensor([-1.0, 0.5, 2.0, float("nan")]).reshape(1, 1, 2, 2)
    files = _write(tmp_path, "image", images, nrow=1)
    np.testing.assert_array_equal(_pixels(files[2]), [[0, 128], [255, 0]])
    with Image.open(files[2]) as image:
        assert image.mode == "L"


def test_image_nrow_sets_grid_columns(tmp_path):
    files = _write(tmp_path, "image", _levels((B, 1, H, W)), nrow=B)
    assert _pixels(files[0]).shape[:2] == (
        H + 2 * GRID_PADDING,
        B * (W + GRID_PADDING) + GRID_PADDING,
    )


def test_text_one_sample_per_line_utf8(tmp_path):
    (path,) = _write(tmp_path, "text", ["hello world", "two\nlines\r\nhere", "ünïcode ✓"])
    assert path == tmp_path / "samples.txt"
    assert path.read_text(encoding="utf-8").split("\n") == [
        "hello world",
        "two lines here",
        "ünïcode ✓",
        "",
    ]


def test_audio_writes_16bit_wavs_at_rate(tmp_path):
    waves = [torch.linspace(-2, 2, 100), torch.zeros(37), torch.full((64,), 0.5)]
    files = _write(tmp_path, "audio", waves)
    assert [f.relative_to(tmp_path).as_posix() for f in files[:3]] == [
        f"audio/sample_{i:03d}.wav" for i in range(3)
    ]
    assert files[3] == tmp_path / "spectrograms.png"
    for path, wave in zip(files[:3], waves, strict=True):
        info = sf.info(path)
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (
            RATE,
            wave.numel(),
            1,
            "PCM_16",
        )
        data, _ = sf.read(path, dtype="float32")
        np.testing.assert_allclose(data, wave.clamp(-1, 1).numpy(), atol=1 / 2**15)


def test_audio_accepts_a_2d_tensor(tmp_path):
    files = _write(tmp_path, "audio", torch.zeros(2, 10))
    assert [sf.info(f).frames for f in files if f.suffix == ".wav"] == [10, 10]


def test_audio_spectrogram_shows_a_tone_at_its_frequency(tmp_path):
    """One row per clip, low frequencies at the bottom: a 2 kHz tone at 8 kHz sampling lands
    half-way up (Nyquist 4 kHz), silence is black."""
    rate = 8000
    tone = torch.sin(2 * torch.pi * 2000 * torch.arange(rate) / rate)
    files = _write(tmp_path, "audio", [tone, torch.zeros(rate)], sampling_rate=rate)
    grid = _pixels(tmp_path / "spectrograms.png")[..., 0]  # [rows, cols]
    bins = 32 * rate // 1000 // 2 + 1  # 32 ms windows -> n_fft // 2 + 1 bins
    first = grid[GRID_PADDING : GRID_PADDING + bins]
    assert bins - 1 - int(first.mean(1).argmax()) == (bins - 1) // 2  # row from the bottom
    second = grid[2 * GRID_PADDING + bins : 2 * GRID_PADDING + 2 * bins]
    assert second.max() == 0 and first.max() == 255
    assert any(f.name.startswith("spectrograms_x") for f in files)


def test_audio_nrow_sets_spectrograms_per_row(tmp_path):
    rate = 8000
    one_row = _pixels(_write(tmp_path / "a", "audio", torch.zeros(4, rate), sampling_rate=rate)[4])
    two_by_two = _write(tmp_path / "b", "audio", torch.zeros(4, rate), sampling_rate=rate, nrow=2)
    side_by_side = _pixels(two_by_two[4])
    bins = 32 * rate // 1000 // 2 + 1
    assert one_row.shape[0] == 4 * (bins + GRID_PADDING) + GRID_PADDING  # default: a column
    assert side_by_side.shape[0] == 2 * (bins + GRID_PADDING) + GRID_PADDING
    assert side_by_side.shape[1] == 2 * one_row.shape[1] - GRID_PADDING


def test_video_writes_gifs_and_first_frame_grid(tmp_path):
    videos = _levels((B, T, 1, H, W))
    files = _write(tmp_path, "video", videos)
    assert files[0] == tmp_path / "samples.png" and files[1].name.startswith("samples_x")
    assert files[2 + B] == tmp_path / "frames.png"
    strip = _pixels(files[2 + B])[..., 0]  # one row of T frames per sample
    for i, t in ((0, 0), (B - 1, T - 1)):
        top, left = GRID_PADDING + i * (H + GRID_PADDING), GRID_PADDING + t * (W + GRID_PADDING)
        expected = (videos[i, t, 0] * 255).round().to(torch.uint8).numpy()
        np.testing.assert_array_equal(strip[top : top + H, left : left + W], expected)
    files = [files[0], *files[2 : 2 + B]]  # the native grid and the clips
    assert [f.relative_to(tmp_path).as_posix() for f in files[1:]] == [
        f"video/sample_{i:03d}.gif" for i in range(B)
    ]
    expected = (videos * 255).round().to(torch.uint8)[:, :, 0].numpy()  # [B,T,H,W]
    grid = _pixels(files[0])
    top_left = grid[GRID_PADDING : GRID_PADDING + H, GRID_PADDING : GRID_PADDING + W, 0]
    np.testing.assert_array_equal(top_left, expected[0, 0])
    for i, path in enumerate(files[1:]):
        with Image.open(path) as gif:
            assert gif.n_frames == T and gif.size == (W, H)
            for t, frame in enumerate(ImageSequence.Iterator(gif)):
                assert frame.info["duration"] == GIF_FRAME_MS
                np.testing.assert_array_equal(np.asarray(frame.convert("L")), expected[i, t])


def test_video_rgb_gif_frame_count(tmp_path):
    files = _write(tmp_path, "video", _levels((1, T, 3, H, W)))
    (path,) = [f for f in files if f.suffix == ".gif"]
    with Image.open(path) as gif:
        assert gif.n_frames == T


def test_tabular_csv_round_trip(tmp_path):
    table = _decoded("tabular")
    (path,) = _write(tmp_path, "tabular", table)
    assert path == tmp_path / "samples.csv"
    pd.testing.assert_frame_equal(pd.read_csv(path), table, check_exact=False, rtol=1e-7)


@pytest.mark.parametrize("kind", modalities())
def test_same_input_same_bytes(tmp_path, kind):
    def digests(folder: Path) -> dict[str, str]:
        files = _write(folder, kind)
        return {
            f.relative_to(folder).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in files
        }

    assert digests(tmp_path / "a") == digests(tmp_path / "b")


@pytest.mark.parametrize("with_mask", [False, True])
def test_latents_round_trip(tmp_path, with_mask):
    latents = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2]) if with_mask else None
    metadata = {
        "steps": 6,
        "guidance_scale": 3.5,
        "layout": {"kind": "grid", "shape": [1, 5]},
        "prompt": "ünïcode",
    }
    path = write_latents(tmp_path / "out" / "latents.safetensors", latents, metadata, mask=mask)
    loaded = read_latents(path)
    torch.testing.assert_close(loaded.latents, latents, rtol=0, atol=0)
    assert loaded.metadata == metadata
    if with_mask:
        assert torch.equal(loaded.mask, mask)
    else:
        assert loaded.mask is None
    again = write_latents(tmp_path / "again.safetensors", latents, metadata, mask=mask)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("metadata", "mask", "match"),
    [
        ({"bad": object()}, None, "metadata\\['bad'\\]"),
        ({1: "x"}, None, "keys must be str"),
        ({}, torch.ones(2, 4, dtype=torch.bool), "mask must be a tensor of shape"),
    ],
)
def test_write_latents_rejects_bad_input(tmp_path, metadata, mask, match):
    with pytest.raises(ValueError, match=match):
        write_latents(tmp_path / "x.safetensors", torch.zeros(2, 5, 4), metadata, mask=mask)


def test_unknown_modality_lists_allowed(tmp_path):
    with pytest.raises(ValueError, match="unknown modality 'hologram'; allowed: .*image.*video"):
        write_decoded(tmp_path, "hologram", [])


@pytest.mark.parametrize(
    ("kind", "decoded", "kwargs", "match"),
    [
        ("image", torch.zeros(3, 4, 4), {}, "float tensor \\[B, K_img, H, W\\]"),
        ("image", torch.zeros(1, 2, 4, 4), {}, "K_img in"),
        ("image", torch.zeros(1, 3, 4, 4, dtype=torch.uint8), {}, "floating point"),
        ("image", torch.zeros(0, 3, 4, 4), {}, "empty"),
        ("image", torch.zeros(1, 3, 4, 4), {"nrow": 0}, "nrow"),
        ("video", torch.zeros(1, 3, 4, 4), {}, "\\[B, T, K_img, H, W\\]"),
        ("video", torch.zeros(1, 0, 3, 4, 4), {}, "at least one frame"),
        ("video", torch.zeros(1, 2, 4, 4, 4), {}, "K_img in"),
        ("text", "just one string", {}, "list of str"),
        ("text", ["ok", 3], {}, "text sample 1"),
        ("audio", [torch.zeros(4)], {}, "sampling_rate"),
        ("audio", [torch.zeros(2, 4)], {"sampling_rate": RATE}, "audio sample 0"),
        ("tabular", {"x": [1]}, {}, "DataFrame"),
    ],
)
def test_bad_input_raises(tmp_path, kind, decoded, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_decoded(tmp_path, kind, decoded, **kwargs)


def test_each_adapter_writes_with_the_writer_it_declares():
    assert {cls.modality for cls in ADAPTERS.values()} == set(modalities())
    for cls in ADAPTERS.values():
        assert writer_for(cls.modality) is cls.writer
    assert PatchImageAdapter.writer is ADAPTERS["image"].writer  # one modality, one writer


def test_decoded_adapter_output_writes_under_its_modality(tmp_path):
    adapter = PatchImageAdapter(PatchImageConfig(image_size=4, patch_size=2, channels=1))
    images = _levels((2, 1, 4, 4))
    decoded = adapter.decode(adapter.encode(images).latents)
    files = write_decoded(tmp_path, adapter.modality, decoded)
    assert files[0] == tmp_path / "samples.png" and len(files) == 4  # grid, its view, 2 images
    np.testing.assert_array_equal(_pixels(files[2]), (images[0, 0] * 255).round().numpy())


def test_write_decoded_reaches_a_newly_registered_modality(smell, tmp_path):
    (path,) = write_decoded(tmp_path, "smell", ["rose", "smoke"])
    assert path.read_text() == "rose smoke"
    unregister_adapter("smell")
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        write_decoded(tmp_path, "smell", ["rose"])


def _model(adapter) -> SimpleNamespace:
    return SimpleNamespace(adapters={"phase": adapter}, cond_maps={"phase": None})


def default_condition(model, num_samples):
    """What the pipeline samples "phase" with when no labels or prompts are given."""
    return sampling_condition(model, "phase", num_samples, None, None)


@pytest.mark.parametrize(
    ("condition_kind", "condition_dim", "expected"),
    [("label", 3, [0, 1, 2, 0, 1]), ("label", None, None), ("prompt", 8, None), (None, 3, None)],
)
def test_default_condition_cycles_classes_of_label_adapters(
    condition_kind, condition_dim, expected
):
    adapter = SimpleNamespace(condition_kind=condition_kind, condition_dim=condition_dim)
    condition = default_condition(_model(adapter), 5)
    assert (None if condition is None else condition.tolist()) == expected
    no_map = SimpleNamespace(adapters={"phase": adapter}, cond_maps={})
    assert default_condition(no_map, 5) is None


def test_default_condition_of_registered_adapters():
    labelled = PatchImageAdapter(PatchImageConfig(image_size=4, patch_size=2, num_classes=2))
    assert default_condition(_model(labelled), 3).tolist() == [0, 1, 0]
    unlabelled = PatchImageAdapter(PatchImageConfig(image_size=4, patch_size=2))
    assert default_condition(_model(unlabelled), 3) is None
