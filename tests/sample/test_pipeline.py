"""QGFDPipeline: a saved model as a diffusers pipeline, sampling through one cached model view
that never switches its modules' modes. ``qgfd sample`` is tested in tests/test_cli.py.

The ``saved_pipeline`` fixture (tests/conftest.py): a pipeline folder of a two-modality model
with distinct live and EMA weights."""

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from PIL import Image

from qgfd_diffusion import QGFDPipeline, SharedQGFDDiffusionModel
from qgfd_diffusion.sample import generate
from qgfd_diffusion.sample.options import SampleOptions
from qgfd_diffusion.sample.run import load_pipeline, sample_to_folder

STEPS = 3


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


def test_diffusers_loads_the_folder_with_ema_weights_by_default(saved_pipeline):
    folder, model, ema = saved_pipeline
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


def test_output_types_and_modalities(saved_pipeline):
    pipe = QGFDPipeline.from_pretrained(saved_pipeline[0])
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


def test_class_labels_choose_the_condition(saved_pipeline):
    folder, model, ema = saved_pipeline
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
def test_bad_calls_are_named(saved_pipeline, kwargs, message):
    pipe = QGFDPipeline.from_pretrained(saved_pipeline[0])
    with pytest.raises(ValueError, match=message):
        pipe(num_inference_steps=STEPS, **kwargs)


def test_schedulers_swap_the_diffusers_way(saved_pipeline):
    pipe = QGFDPipeline.from_pretrained(saved_pipeline[0])
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


def count_view_builds(monkeypatch) -> list:
    """Every build of a pipeline's model view (``SharedQGFDDiffusionModel.from_parts``)."""
    builds, build = [], SharedQGFDDiffusionModel.from_parts.__func__

    def counted(cls, *args, **kwargs):
        builds.append(cls)
        return build(cls, *args, **kwargs)

    monkeypatch.setattr(SharedQGFDDiffusionModel, "from_parts", classmethod(counted))
    return builds


def test_sampling_16_images_builds_the_model_view_once(saved_pipeline, tmp_path, monkeypatch):
    pipe = QGFDPipeline.from_pretrained(saved_pipeline[0])
    builds = count_view_builds(monkeypatch)
    options = SampleOptions(num_samples=16, num_inference_steps=2, guidance_scale=2.0)
    sample_to_folder(pipe, "digits", tmp_path / "digits", options)  # as `qgfd sample` does
    assert len(builds) == 1
    for seed in range(16):  # one image at a time, the condition asked for as well
        pipe("digits", num_inference_steps=2, generator=torch.Generator().manual_seed(seed))
        pipe.condition("digits", 1)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe("digits", num_inference_steps=2, output_type="latent")  # same schedule: same view
    assert len(builds) == 1
    pipe.use_ema = False  # another denoiser: a new view, kept from then on
    pipe("digits", num_inference_steps=2, output_type="latent")
    pipe("text", num_inference_steps=2, output_type="latent")
    assert len(builds) == 2 and pipe.model().backbone is pipe.backbone


def test_sampling_never_switches_the_modules_modes(saved_pipeline):
    """The pipeline and ``generate`` sample modules in the mode they are in (diffusers'
    convention): a training loop's live weights are never switched to eval and back."""
    _, model, ema = saved_pipeline
    pipe = QGFDPipeline.from_model(model, backbone_ema=ema)
    modules = [model.backbone, ema, *model.adapters.values()]
    modes = lambda: [m.training for module in modules for m in module.modules()]  # noqa: E731
    for mode in (True, False):
        for module in modules:
            module.train(mode)
        before = modes()
        pipe("digits", num_samples=2, num_inference_steps=2, guidance_scale=2.0)
        generate(model, "text", 2, num_inference_steps=2)
        assert modes() == before
    for module in modules:
        module.train()  # as the fixture built them


def test_load_pipeline_reads_old_model_folders(saved_pipeline, tmp_path):
    """A folder written by SharedQGFDDiffusionModel.save_pretrained (no model_index.json)."""
    _, model, _ = saved_pipeline
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
    from qgfd_diffusion.train import load_trained_pipeline
    from qgfd_diffusion.train.config import load_run_config
    from qgfd_diffusion.train.trainer import Trainer

    smoke = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    steps = [
        "phases.0.steps=3",
        "phases.1.steps=3",
        "phases.0.fit_steps=2",
        "sample.num_inference_steps=2",
    ]
    config = load_run_config(smoke, [*steps, "train.checkpoint_every=2"])
    final = Trainer(config, tmp_path / "run", progress=False).fit()
    last = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    for modality in ("image", "text"):
        outputs = [
            load_trained_pipeline(folder)(modality, num_samples=2, num_inference_steps=2,
                                          generator=torch.Generator().manual_seed(0),
                                          output_type="latent")
            for folder in (last, final)
        ]  # fmt: skip
        assert torch.equal(outputs[0].latents, outputs[1].latents), modality
