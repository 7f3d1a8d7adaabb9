"""QGFDPipeline: a saved model as a diffusers pipeline; ``qgfd sample`` is a thin layer on it."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from PIL import Image
from safetensors.torch import load_file

from qgfd_diffusion import DiffusionConfig, QGFDPipeline, SharedQGFDDiffusionModel
from qgfd_diffusion.adapters import (
    PatchImageAdapter,
    PatchImageConfig,
    TextAdapter,
    TextAdapterConfig,
)
from qgfd_diffusion.cli import main as cli_main
from qgfd_diffusion.sample import generate
from qgfd_diffusion.sample.run import load_pipeline

STEPS = 3


def perturb(module, seed):
    """Move weights off the adaLN-Zero init (a fresh backbone predicts exactly zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return module


@pytest.fixture(scope="module")
def saved(tiny_dir, tmp_path_factory):
    """A two-modality model (class-conditional digits, unconditional text with a fitted rounding
    head) saved as a pipeline folder with distinct live and EMA weights."""
    torch.manual_seed(0)
    digits = PatchImageAdapter(
        PatchImageConfig(image_size=8, patch_size=4, channels=1, num_classes=3)
    )
    digits.fit_latent_stats([torch.rand(8, 1, 8, 8)])
    text = TextAdapter(
        TextAdapterConfig(
            encoder_name_or_path=str(tiny_dir("t5")), max_length=8, decoder="rounding"
        )
    )
    lines = ["to be or not to be", "a rose by any other name", "all the world's a stage"]
    text.fit_latent_stats([lines])
    text.fit_decoder([lines], steps=5)
    cfg = DiffusionConfig(
        d_model=32, num_heads=4, num_layers=1, d_ff=64, latent_dim=32, cond_dim=8, num_timesteps=50
    )
    model = SharedQGFDDiffusionModel(cfg, adapters={"digits": digits, "text": text})
    model.encode("digits", {"images": torch.rand(2, 1, 8, 8), "labels": torch.tensor([0, 1])})
    model.encode("text", lines)
    perturb(model.backbone, 1)
    ema = perturb(copy.deepcopy(model.backbone), 2)
    folder = tmp_path_factory.mktemp("pipeline") / "final"
    QGFDPipeline.from_model(model, backbone_ema=ema).save_pretrained(folder)
    return folder, model, ema


def latents_of(model, backbone, modality, condition=None, guidance=1.0, seed=0, count=4):
    model = SharedQGFDDiffusionModel.from_parts(backbone, model.schedule, model.adapter_set())
    return generate(
        model,
        modality,
        count,
        condition=condition,
        generator=torch.Generator().manual_seed(seed),
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        scheduler=model.schedule.sampling_scheduler(),
        decode=False,
    ).latents


def test_diffusers_loads_the_folder_with_ema_weights_by_default(saved):
    folder, model, ema = saved
    pipe = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(pipe, QGFDPipeline) and isinstance(pipe.scheduler, DDIMScheduler)
    out = pipe("digits", num_samples=4, num_inference_steps=STEPS, guidance_scale=2.0,
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    labels = torch.tensor([0, 1, 2, 0])  # class-conditional: 0..K-1 cycled by default
    assert torch.equal(out.latents, latents_of(model, ema, "digits", labels, 2.0))
    live = QGFDPipeline.from_pretrained(folder, use_ema=False)
    live_out = live("digits", num_samples=4, num_inference_steps=STEPS, guidance_scale=2.0,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(live_out.latents, latents_of(model, model.backbone, "digits", labels, 2.0))
    assert not torch.equal(live_out.latents, out.latents)


def test_output_types_and_modalities(saved):
    pipe = QGFDPipeline.from_pretrained(saved[0])
    run = lambda **kw: pipe(
        num_inference_steps=STEPS, generator=torch.Generator().manual_seed(0), **kw
    )  # noqa: E731
    pil = run(modality="digits", num_samples=2, class_labels=[2, 1])
    assert len(pil.images) == 2 and all(isinstance(i, Image.Image) for i in pil.images)
    assert pil.images[0].size == (8, 8) and pil.texts is None
    array = run(modality="digits", num_samples=2, class_labels=[2, 1], output_type="np").images
    assert isinstance(array, np.ndarray) and array.shape == (2, 8, 8, 1)
    tensor = run(modality="digits", num_samples=2, class_labels=[2, 1], output_type="pt").images
    assert tensor.shape == (2, 1, 8, 8)
    assert np.allclose(np.asarray(pil.images[0]) / 255, array[0, ..., 0], atol=1 / 255)
    latent = run(modality="digits", num_samples=2, class_labels=[2, 1], output_type="latent")
    assert latent.images is None and torch.equal(latent.latents, pil.latents)
    texts = run(modality="text", num_samples=3).texts
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    latents, images = run(modality="digits", num_samples=1, return_dict=False)
    assert latents.shape[0] == 1 and len(images) == 1


def test_class_labels_choose_the_condition(saved):
    folder, model, ema = saved
    pipe = QGFDPipeline.from_pretrained(folder)
    out = pipe("digits", num_samples=3, num_inference_steps=STEPS, class_labels=[2, 2, 1],
               guidance_scale=3.0, generator=torch.Generator().manual_seed(5))  # fmt: skip
    expected = latents_of(model, ema, "digits", torch.tensor([2, 2, 1]), 3.0, seed=5, count=3)
    assert torch.equal(out.latents, expected)
    one_for_all = pipe("digits", num_samples=3, num_inference_steps=STEPS, class_labels=[2],
                       guidance_scale=3.0, generator=torch.Generator().manual_seed(5))  # fmt: skip
    same = latents_of(model, ema, "digits", torch.tensor([2, 2, 2]), 3.0, seed=5, count=3)
    assert torch.equal(one_for_all.latents, same)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(modality="text", guidance_scale=3.0), "guidance_scale=3.0 needs a condition"),
        (dict(modality="text", class_labels=[1]), "class_labels given, but modality 'text'"),
        (dict(modality="digits", prompt="hello"), "prompt given, but modality 'digits'"),
        (dict(modality="digits", num_samples=3, class_labels=[1, 2]), "gives 2 values"),
        (dict(modality="digits", class_labels=[7]), r"labels must lie in \[0, 3\)"),
        (dict(modality="smell"), "unknown modality 'smell'"),
        (dict(modality="digits", output_type="gif"), "output_type must be one of"),
    ],
)
def test_bad_calls_are_named(saved, kwargs, message):
    pipe = QGFDPipeline.from_pretrained(saved[0])
    with pytest.raises(ValueError, match=message):
        pipe(num_inference_steps=STEPS, **kwargs)


def test_schedulers_swap_the_diffusers_way(saved):
    pipe = QGFDPipeline.from_pretrained(saved[0])
    ddim = pipe(
        "digits",
        num_samples=2,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
    )  # noqa: E501
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    dpm = pipe(
        "digits",
        num_samples=2,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
    )  # noqa: E501
    assert torch.isfinite(dpm.latents).all() and not torch.equal(dpm.latents, ddim.latents)
    assert pipe.scheduler.config.num_train_timesteps == 50


def test_qgfd_sample_gives_the_pipelines_latents(saved, tmp_path):
    folder = saved[0]
    argv = ["sample", "--checkpoint", str(folder), "--modality", "digits", "--num-samples", "3"]
    argv += ["--steps", str(STEPS), "--seed", "4", "--guidance", "2", "--classes", "1,0,2"]
    assert cli_main([*argv, "--out", str(tmp_path / "cli")]) == 0
    pipe = QGFDPipeline.from_pretrained(folder)
    out = pipe("digits", num_samples=3, num_inference_steps=STEPS, guidance_scale=2.0,
               class_labels=[1, 0, 2], generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert torch.equal(
        load_file(str(tmp_path / "cli" / "latents.safetensors"))["latents"], out.latents
    )
    assert (tmp_path / "cli" / "samples.png").is_file()
    view = list((tmp_path / "cli").glob("samples_x*.png"))  # the grid at a viewable size
    assert len(view) == 1 and min(Image.open(view[0]).size) >= 256
    live = cli_main([*argv, "--no-ema", "--device", "cpu", "--out", str(tmp_path / "live")])
    assert live == 0
    live_latents = load_file(str(tmp_path / "live" / "latents.safetensors"))["latents"]
    assert not torch.equal(live_latents, out.latents)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--modality", "text", "--guidance", "3"], "needs a condition"),
        (["--modality", "digits", "--prompt", "hi"], "prompt given"),
        (["--modality", "digits", "--device", "cuda:7"], "--device cuda:7: no such device"),
        (["--modality", "digits", "--device", "nonsense"], "is not a torch device"),
        (["--modality", "digits", "--prompt", "@/no/such/file"], "prompt file not found"),
        (["--modality", "digits", "--classes", "a,b"], "expected integers like 3,3,7"),
    ],
)
def test_bad_sample_options_exit_2_with_one_line(saved, tmp_path, capsys, extra, message):
    argv = ["sample", "--checkpoint", str(saved[0]), "--steps", "2", "--out", str(tmp_path / "o")]
    try:
        code = cli_main([*argv, *extra])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_version_flag(capsys):
    import qgfd_diffusion

    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert (
        exit_.value.code == 0
        and capsys.readouterr().out.strip() == f"qgfd {qgfd_diffusion.__version__}"
    )


def test_load_pipeline_reads_old_model_folders(saved, tmp_path):
    """A folder written by SharedQGFDDiffusionModel.save_pretrained (no model_index.json)."""
    _, model, _ = saved
    model.save_pretrained(tmp_path / "model")
    pipe = load_pipeline(tmp_path / "model")
    out = pipe(
        "digits",
        num_samples=2,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(0),
    )  # noqa: E501
    expected = latents_of(model, model.backbone, "digits", torch.tensor([0, 1]), count=2)
    assert torch.equal(out.latents, expected)


@pytest.mark.slow
def test_a_training_checkpoint_samples_like_the_final_folder(tmp_path):
    """``checkpoints/step-*`` loads as a pipeline; the last one holds the final weights."""
    from qgfd_diffusion.train.config import load_run_config
    from qgfd_diffusion.train.trainer import Trainer

    smoke = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    steps = ["phases.0.steps=3", "phases.1.steps=3", "phases.0.fit_steps=2", "sample.steps=2"]
    config = load_run_config(smoke, [*steps, "train.checkpoint_every=2"])
    final = Trainer(config, tmp_path / "run", progress=False).fit()
    last = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    for modality in ("image", "text"):
        outputs = [
            load_pipeline(folder)(modality, num_samples=2, num_inference_steps=2,
                                  generator=torch.Generator().manual_seed(0), output_type="latent")
            for folder in (last, final)
        ]  # fmt: skip
        assert torch.equal(outputs[0].latents, outputs[1].latents), modality
