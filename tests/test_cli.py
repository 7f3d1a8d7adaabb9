"""``qgfd``: flags onto the library's options, one-line errors with exit status 2, and
``qgfd sample`` giving the pipeline's own latents. Training runs of the CLI (resume, kills,
damaged checkpoints) are tested under tests/train/."""

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import qgfd_diffusion
from qgfd_diffusion import QGFDPipeline
from qgfd_diffusion.cli import build_parser, sample_options
from qgfd_diffusion.cli import main as cli_main
from qgfd_diffusion.sample.options import SampleOptions

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
STEPS = 3


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"qgfd {qgfd_diffusion.__version__}"


def test_sample_flags_map_onto_the_pipelines_option_names(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a rose\n\nby any other name\n")
    argv = ["sample", "--checkpoint", "run", "--modality", "digits", "--out", "o"]
    argv += ["--steps", "7", "--guidance", "2.5", "--classes", "3,3,7", "--eta", "0.5"]
    argv += ["--num-samples", "3", "--seed", "9", "--scheduler", "dpm++", "--clamp-steps", "2"]
    argv += ["--prompt", "hi", "--prompt", f"@{prompts}", "--graph", "g.npy"]
    options = sample_options(build_parser().parse_args(argv))
    assert options == SampleOptions(
        num_samples=3,
        num_inference_steps=7,
        eta=0.5,
        guidance_scale=2.5,
        scheduler="dpm++",
        clamp_steps=2,
        seed=9,
        class_labels=[3, 3, 7],
        prompt=["hi", "a rose", "by any other name"],
        graph="g.npy",
    )
    defaults = sample_options(build_parser().parse_args(argv[:7]))
    assert defaults == SampleOptions()  # every flag's default is the options' own


def test_qgfd_sample_gives_the_pipelines_latents(saved_pipeline, tmp_path):
    folder = saved_pipeline[0]
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
def test_bad_sample_options_exit_2_with_one_line(saved_pipeline, tmp_path, capsys, extra, message):
    argv = ["sample", "--checkpoint", str(saved_pipeline[0]), "--steps", "2"]
    argv += ["--out", str(tmp_path / "o")]
    try:
        code = cli_main([*argv, *extra])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


BAD_INPUT = [
    (["train", "missing.yaml", "--output-dir", "{tmp}/r"], "config file not found: missing.yaml"),
    (
        ["train", str(SMOKE), "--output-dir", "{tmp}/r", "--set", "phases.0.steps=-3"],
        "phases[0].steps: must be > 0",
    ),
    (
        ["train", str(SMOKE), "--output-dir", "{tmp}/r", "--set", "model.num_heads=three"],
        "model.num_heads",
    ),
    (
        ["train", str(SMOKE), "--output-dir", "{tmp}/r", "--set", "sample.steps=3"],
        "sample.steps: the old name of sample.num_inference_steps, which is given too",
    ),
    (
        ["sample", "--checkpoint", "{tmp}/none", "--modality", "text", "--out", "{tmp}/o"],
        "checkpoint not found",
    ),
    (
        ["sample", "--checkpoint", "{tmp}", "--modality", "text", "--out", "{tmp}/o"],
        "not a saved qgfd model",
    ),
    (
        [
            "sample",
            "--checkpoint",
            "{tmp}",
            "--modality",
            "text",
            "--steps",
            "0",
            "--out",
            "{tmp}/o",
        ],
        "--steps",
    ),
    (
        [
            "sample",
            "--checkpoint",
            "{tmp}",
            "--modality",
            "text",
            "--num-samples",
            "0",
            "--out",
            "o",
        ],
        "--num-samples",
    ),
]


@pytest.mark.parametrize("argv,message", BAD_INPUT)
def test_bad_cli_input_exits_2_with_one_line(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        code = cli_main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) <= 2, err
