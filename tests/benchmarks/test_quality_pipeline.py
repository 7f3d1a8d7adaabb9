"""The quality benchmark (benchmarks/quality.py) end to end in quick mode: every task trains a
tiny run from its configs/eval file, samples, scores and writes well-formed results.

Checks the pipeline (keys present, values finite and in range, tables and plots written), never
the quality targets: quick runs train for a few steps.
"""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FRACTIONS = (
    "class_accuracy",
    "real_class_accuracy",
    "synthetic_accuracy",
    "real_accuracy",
    "synthetic_macro_f1",
    "real_macro_f1",
    "generated_distinct_1",
    "real_distinct_1",
    "generated_distinct_2",
    "real_distinct_2",
    "generated_distinct_3",
    "real_distinct_3",
)
TRAINING_KEYS = (
    "parameters",
    "seconds_per_step",
    "train_seconds",
    "train_threads",
    "final_loss",
    "steps",
)
# task -> (eval files, variants, metric -> (low, high) bounds every row must satisfy)
TEXT_BOUNDS = {
    "generated_perplexity": (1, math.inf),
    "real_perplexity": (1, math.inf),
    "perplexity_ratio": (0, math.inf),
    "generated_distinct_1": (0, 1),
    "real_distinct_1": (0, 1),
    "generated_distinct_2": (0, 1),
    "real_distinct_2": (0, 1),
    "distinct_1_ratio": (0, math.inf),
    "distinct_2_ratio": (0, math.inf),
    "entropy_ratio": (0, math.inf),
    "generated_unknown_rate": (0, 1),
    "real_unknown_rate": (0, 1),
    "mean_tokens_ratio": (0, math.inf),
    "generated_copy_rate": (0, 1),
    "real_copy_rate": (0, 0.05),  # held-out lines: few repeat a training line verbatim
    "round_trip_accuracy": (0.9, 1),  # clean latents -> tokens, even after 5 fitting steps
    "reference_shuffled_perplexity_ratio": (1, math.inf),  # shuffling real words hurts
    "reference_frequent_perplexity_ratio": (1, math.inf),
    "reference_bigram_perplexity_ratio": (0, math.inf),
}
EXPECTED = {
    "mnist": (
        {"mnist"},
        {"default"},
        {
            "class_accuracy": (0, 1),
            "real_class_accuracy": (0, 1),
            "frechet_distance": (0, math.inf),
            "real_vs_real_floor": (1e-300, math.inf),
            "fd_over_floor": (0, math.inf),
        },
    ),
    "tabular": (
        {"tabular_wine", "tabular_breast_cancer"},
        {"default"},
        {
            "synthetic_accuracy": (0, 1),
            "real_accuracy": (0, 1),
            "ratio": (0, math.inf),
            "synthetic_macro_f1": (0, 1),
            "real_macro_f1": (0, 1),
        },
    ),
    "text": (  # two files with their own variants: (file, variant) pairs
        {"text", "text_ablations"},
        {("text", "default"), ("text", "latent scale 0.5")}
        | {
            ("text_ablations", variant)
            for variant in (
                "default",
                "no self-cond",
                "rounding loss",
                "rounding loss 0.25",
                "clamping",
                "ddim 200 steps",
                "ancestral eta=1",
            )
        },
        TEXT_BOUNDS,
    ),
    # quick: 5 fitting steps of a randomly initialised MLP head over 30,522 WordPieces
    "text-minilm": ({"text_minilm"}, {"minilm"}, {**TEXT_BOUNDS, "round_trip_accuracy": (0, 1)}),
    "continual": (
        {"continual"},
        {"no replay", "replay every 4"},
        {
            "loss_before": (0, math.inf),
            "loss_after": (0, math.inf),
            "forgetting": (-math.inf, math.inf),
            "relative_forgetting": (-1, math.inf),
            "later_phase_loss": (0, math.inf),
        },
    ),
    "graph": (
        {"graph"},
        {
            "sdpa",
            "sdpa mask",
            "sdpa mask 4x depth",
            "sdpa lappe",
            "qgfd graph a=0.9 fixed mask",
            "qgfd graph a=0.9 fixed mask iterative",
            "qgfd graph learned a mask",
            "qgfd graph a(t) mask",
            "qgfd keys a=0.9 T=16",
            "heat",
        },
        {
            "mse_over_bayes_1": (0.5, math.inf),  # >= 1 up to the noise of 16 held-out draws
            "mse_over_bayes_10": (0.5, math.inf),
            "mse_over_bayes_100": (0.5, math.inf),
            "fd_over_floor": (0, math.inf),
            "mean_sq_norm": (0, math.inf),
            "real_mean_sq_norm": (0, math.inf),
            "step_time_vs_sdpa": (0, math.inf),
        },
    ),
    "video": (
        {"video"},
        {"default"},
        {
            "frame_class_accuracy": (0, 1),
            "frame_class_agreement": (0.1, 1),  # at least 1 frame in 10 agrees with the mode
            "real_frame_class_agreement": (0.1, 1),
            "motion_residual": (0, math.inf),
            "real_motion_residual": (0, 1.0),  # real clips: rounding of the pasted positions
            "real_centre_speed": (0.5, 5.0),  # speeds drawn in [1, 3] px/frame, then bounced
            "frame_fd_floor": (1e-300, math.inf),
            "frame_fd_over_floor": (0, math.inf),
        },
    ),
    "audio": (
        {"audio"},
        {"default"},
        {
            "logmel_fd": (0, math.inf),
            "logmel_floor": (1e-300, math.inf),
            "logmel_fd_over_floor": (0, math.inf),
            "energy_above_4khz": (0, 1),
            "real_energy_above_4khz": (0, 1e-4),  # the bundled speech is band-limited at 4 kHz
            "energy_ratio": (0, math.inf),
            # Griffin-Lim leaks some energy upwards, but the decoded speech stays far below 4 kHz
            "decoded_real_energy_above_4khz": (1e-300, 1e-4),
            "decoded_energy_ratio": (0, math.inf),
            "voiced_share": (0, 1),
            "real_voiced_share": (0.2, 1),  # the held-out speech: 0.38-0.6 by split
            "voiced_share_ratio": (0, math.inf),
            "level_spread_db_ratio": (0, math.inf),
            "shaped_noise_fd_over_floor": (0, math.inf),
            "white_noise_fd_over_floor": (2, math.inf),  # 4.5-8.8 on the three splits
        },
    ),
}
STUDY_ATTENTION = ("sdpa", "heat")  # plus the qgfd variants, selected by --set below


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(
        f"{name}_benchmark", REPO / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quality():
    return load_script("quality")


@pytest.fixture(scope="module")
def run_quick(quality, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")

    def run(task, *extra):
        result = quality.main(
            [
                task,
                "--quick",
                "--no-progress",
                "--out",
                str(root / "out"),
                "--runs",
                str(root / "runs"),
                *extra,
            ]
        )
        return result, root / "out" / task

    run.runs_root = root / "runs"
    return run


def check_files(result: dict, folder: Path) -> None:
    on_disk = json.loads((folder / "results.json").read_text())
    assert on_disk["task"] == result["task"] and on_disk["quick"] is True
    report = (folder / "results.md").read_text()
    assert "| file | variant | seeds |" in report and on_disk["command"] in report
    for plot in result["plots"]:
        assert (folder / plot).stat().st_size > 0 and f"]({plot})" in report


def check_rows(rows: list[dict], bounds: dict[str, tuple[float, float]]) -> None:
    for row in rows:
        for key in (*bounds, *TRAINING_KEYS):
            assert key in row, f"{row['file']}/{row['variant']}: no {key}"
            assert math.isfinite(row[key]), f"{row['file']}/{row['variant']}: {key}={row[key]}"
        for key, (low, high) in bounds.items():
            assert low <= row[key] <= high, f"{key}={row[key]} outside [{low}, {high}]"
        for key in set(FRACTIONS) & set(row):
            assert 0 <= row[key] <= 1, f"{key}={row[key]}"
        assert row["seconds_per_step"] > 0 and row["parameters"] > 0


def check_summary(result: dict, files: set[str], variants: set, metrics) -> None:
    """variants: names every file runs, or (file, variant) pairs."""
    summary = result["summary"]
    pairs = {v if isinstance(v, tuple) else (f, v) for f in files for v in variants}
    assert {(g["file"], g["variant"]) for g in summary} == pairs
    for group in summary:
        for key in metrics:
            stats = group["metrics"][key]
            assert math.isfinite(stats["mean"]) and stats["std"] >= 0


@pytest.mark.parametrize("task", list(EXPECTED))
def test_quick_task_writes_well_formed_results(run_quick, task):
    files, variants, bounds = EXPECTED[task]
    result, folder = run_quick(task)
    check_files(result, folder)
    check_rows(result["rows"], bounds)
    check_summary(result, files, variants, bounds)
    assert {t["metric"] for t in result["targets"]} <= set(bounds)  # targets reported, not asserted
    if task == "mnist":
        assert any(name.endswith("_samples.png") for name in map(str, folder.iterdir()))
    if task in ("video", "audio"):
        picture = {"video": "_clips.png", "audio": "_spectrograms.png"}[task]
        assert any(name.endswith(picture) for name in map(str, folder.iterdir()))
        assert len(result["rows"]) == 1  # quick mode: one seed of the three
    if task.startswith("text"):
        samples = result["rows"][0]["samples"]
        assert samples["generated"] and samples["real"]
        assert all(isinstance(line, str) for line in samples["generated"])
    if task == "continual":
        replay = {row["variant"]: row["replay_every"] for row in result["rows"]}
        assert replay == {"no replay": 0, "replay every 4": 4}


def test_quick_study_compares_attention_kinds(run_quick):
    """Two qgfd alphas (so the alpha plot is drawn) plus sdpa and heat, two seeds each."""
    variants = (
        "[{name: sdpa, set: [run.model.attention=sdpa]}, "
        "{name: heat, set: [run.model.attention=heat]}, "
        "{name: qgfd a=0.1, set: [run.model.attention=qgfd, run.model.qgfd.alpha=0.1]}, "
        "{name: qgfd a=0.3, set: [run.model.attention=qgfd, run.model.qgfd.alpha=0.3]}]"
    )
    result, folder = run_quick("study", "--set", f"variants={variants}")
    check_files(result, folder)
    _, _, bounds = EXPECTED["mnist"]
    check_rows(result["rows"], bounds)
    names = {"sdpa", "heat", "qgfd a=0.1", "qgfd a=0.3"}
    check_summary(result, {"study"}, names, (*bounds, "seconds_per_step"))
    assert all(len(group["seeds"]) == 2 for group in result["summary"])
    assert len({row["parameters"] for row in result["rows"]}) == 1  # matched parameters
    assert "quality_vs_alpha.png" in result["plots"] or not result["plots"]
    paired = {p["variant"]: p for p in result["paired"]}
    assert set(paired) == names - {"sdpa"}
    assert all(p["reference"] == "sdpa" and p["seeds"] == [0, 1] for p in paired.values())
    assert "Paired by seed: difference from `sdpa`" in (folder / "results.md").read_text()


def test_quick_audio_trains_samples_and_scores_mel_patches(run_quick):
    """The mel adapter's 16 x 7 patches (a grid of bands x times) end to end: trained, saved,
    loaded, sampled, decoded by Griffin-Lim and scored like frame tokens."""
    options = "run.phases.0.adapter_options"
    patches = f"[{options}.patch_mels=16, {options}.patch_frames=7]"
    result, folder = run_quick("audio", "--set", f"variants=[{{name: patches, set: {patches}}}]")
    check_files(result, folder)
    check_rows(result["rows"], EXPECTED["audio"][2])
    assert [row["variant"] for row in result["rows"]] == ["patches"]
    saved = Path(result["rows"][0]["run_dir"]) / "final" / "adapters" / "config.json"
    # quick mode: 1 s clips, 63 frames -> 9 patch times; 128 mel bins -> 8 bands
    assert json.loads(saved.read_text())["layouts"]["speech"] == {"kind": "grid", "shape": [8, 9]}
    assert any(name.endswith("_spectrograms.png") for name in map(str, folder.iterdir()))


def test_quick_study_patch4_pairs_qgfd_with_sdpa_on_49_tokens(run_quick):
    result, folder = run_quick("study-patch4")
    check_files(result, folder)
    check_rows(result["rows"], EXPECTED["mnist"][2])
    assert [(p["variant"], p["reference"]) for p in result["paired"]] == [
        ("qgfd a=0.3 T=2", "sdpa")
    ]
    for row in result["rows"]:
        saved = json.loads((Path(row["run_dir"]) / "final" / "run_config.json").read_text())
        assert saved["phases"][0]["adapter_options"]["patch_size"] == 4  # 7 x 7 = 49 tokens


def test_attention_effect_reads_trained_study_runs(run_quick, capsys):
    """benchmarks/attention_effect.py on the quick study's runs: QGFD at alpha = 0.3 moves the
    attention output off plain attention; an sdpa run is refused by name."""
    run_quick("study")
    effect = load_script("attention_effect")
    study_runs = run_quick.runs_root / "study" / "study"
    capsys.readouterr()
    effect.main([str(study_runs / "qgfd_a=0.3_T=2" / "seed0"), "--samples", "4", "--steps", "2"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "seed0" in line]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    alpha, steps, transition = float(cells[2]), int(cells[3]), cells[4]
    diagonal = float(cells[5].split()[0])
    change, largest = (float(cell.rstrip("%")) for cell in cells[6:8])
    assert (alpha, steps, transition) == (0.3, 2, "keys")
    assert 1 / int(cells[1]) - 1e-3 <= diagonal <= 1
    assert 0 < change <= largest
    with pytest.raises(SystemExit, match="no QGFD attention"):
        effect.main([str(study_runs / "sdpa" / "seed0")])


def test_finished_run_is_rescored_not_retrained(run_quick):
    """Sampling settings only change scoring: a finished run is reused at another guidance;
    another training setting is refused rather than silently mixed with the old weights."""
    run_quick("mnist")
    (run_dir,) = (run_quick.runs_root / "mnist").glob("*/*/seed*")
    metrics = run_dir / "metrics.jsonl"
    before = metrics.read_bytes()
    result, _ = run_quick("mnist", "--set", "run.sample.guidance_scale=1.5")
    assert metrics.read_bytes() == before  # not retrained
    assert math.isfinite(result["rows"][0]["class_accuracy"])
    with pytest.raises(ValueError, match="another training config"):
        run_quick("mnist", "--set", "run.phases.0.lr=0.002")
