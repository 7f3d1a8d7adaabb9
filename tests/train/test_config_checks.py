"""The whole run config is checked when it loads: adapters, their options (typed like the rest
of the config), data sources, replay and sampling settings; errors name the dotted path and
`qgfd train` exits 2 before any work (no run folder, let alone a checkpoint)."""

import pytest
from cli_runs import SMOKE

from qgfd_diffusion.cli import main as cli_main
from qgfd_diffusion.configio import ConfigError, load_yaml
from qgfd_diffusion.train.config import load_run_config, run_config_from_dict
from qgfd_diffusion.train.phases import check_sources


def _video_spec(d):
    d["phases"][1]["adapter"] = "video"
    d["phases"][1]["adapter_options"] = {
        "image_adapter": {"adapter": "patch_image", "config": {"image_size": 8, "patch_sz": 2}}
    }


@pytest.mark.parametrize(
    "mutation,message",
    [
        (
            lambda d: d["phases"][1].__setitem__("adapter", "patch_imag"),
            "phases[1].adapter: unknown adapter 'patch_imag' (allowed: audio, graph_signal, image",
        ),
        (
            lambda d: d["phases"][1]["data"].__setitem__("name", "digitz"),
            "phases[1].data.name: unknown bundled source 'digitz' (allowed: mnist, digits",
        ),
        (
            lambda d: d["phases"][1]["adapter_options"].__setitem__("patch_sz", 2),
            "phases[1].adapter_options.patch_sz: unknown key (allowed: std_mode, latent_scale, "
            "image_size, patch_size, channels, num_classes)",
        ),
        (
            lambda d: d["phases"][1]["adapter_options"].__setitem__("patch_size", "2"),
            "phases[1].adapter_options.patch_size: expected int, got str '2'",
        ),
        (
            lambda d: d["phases"][1]["adapter_options"].__setitem__("patch_size", 3),
            "phases[1].adapter_options.patch_size: 3 must divide image_size 8",
        ),
        (
            lambda d: d["phases"][0]["adapter_options"].__setitem__("decoder", "roundng"),
            "phases[0].adapter_options.decoder: must be one of",
        ),
        (
            lambda d: d["phases"][0]["adapter_options"].pop("encoder_name_or_path"),
            "phases[0].adapter_options.encoder_name_or_path: missing required key",
        ),
        (
            lambda d: d["phases"][0]["adapter_options"].__setitem__(
                "encoder_name_or_path", "tiny:t6"
            ),
            "phases[0].adapter_options.encoder_name_or_path: unknown tiny encoder 'tiny:t6'",
        ),
        (_video_spec, "phases[1].adapter_options.image_adapter.config.patch_sz: unknown key"),
        (
            lambda d: d["phases"][0]["data"].__setitem__("options", {"unit": "word"}),
            "phases[0].data.options.unit: must be one of ['sentence', 'line'], got 'word'",
        ),
        (
            lambda d: d["phases"][0]["data"].__setitem__("options", {"units": "line"}),
            "phases[0].data.options.units: unknown option (allowed: unit)",
        ),
        (
            lambda d: d["phases"][0].__setitem__(
                "data", {"source": "files", "files": ["a.txt"], "format": "txt"}
            ),
            "phases[0].data.format: must be one of ['text', 'csv', 'imagefolder', 'audiofolder']",
        ),
        (
            lambda d: d["phases"][1].__setitem__("replay_phase", "image"),
            "phases[1].replay_phase: must name an earlier phase (one of: ['text']), got 'image'",
        ),
        (
            lambda d: d["phases"][1].__setitem__("replay_phase", "text"),
            "phases[1].replay_every: must be >= 1 when replay_phase is set",
        ),
        (
            lambda d: d["phases"][1].__setitem__("replay_every", 4),
            "phases[1].replay_phase: missing: replay_every is 4; set both",
        ),
        (
            lambda d: d["sample"].__setitem__("scheduler", "dpm+"),
            "sample.scheduler: unknown scheduler 'dpm+' (allowed: ddim, ddpm, dpm++",
        ),
    ],
)
def test_config_errors_name_the_dotted_path_at_load_time(mutation, message):
    data = load_yaml(SMOKE)
    mutation(data)
    with pytest.raises(ConfigError) as error:
        run_config_from_dict(data)
    assert str(error.value).startswith(message), str(error.value)


def test_adapter_and_data_options_are_typed_like_the_rest_of_the_config():
    config = load_run_config(
        SMOKE, ["phases.0.adapter_options.seed=3", "phases.0.data.options.unit=line"]
    )
    assert config.phases[0].adapter_options["seed"] == 3
    assert config.phases[0].data.options == {"unit": "line"}
    table = load_run_config(SMOKE, ["phases.1.adapter=tabular", "phases.1.adapter_options={}"])
    assert table.phases[1].adapter_options == {}  # columns come from the data
    with pytest.raises(ConfigError, match=r"phases\[1\].adapter_options.numeric_columns: unknown"):
        load_run_config(
            SMOKE,
            ["phases.1.adapter=tabular", "phases.1.adapter_options={}"]
            + ["phases.1.adapter_options.numeric_columns=[a]"],
        )


@pytest.mark.parametrize(
    "override,message",
    [  # three errors that a run would otherwise meet only after phase 1 trained
        ("phases.1.adapter=patch_imag", "phases[1].adapter: unknown adapter 'patch_imag'"),
        ("phases.1.data.name=digitz", "phases[1].data.name: unknown bundled source 'digitz'"),
        ("phases.1.adapter_options.patch_sz=2", "phases[1].adapter_options.patch_sz: unknown key"),
    ],
)
def test_late_config_errors_exit_2_before_any_work(override, message, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", str(SMOKE), "--output-dir", str(out), "--no-progress", "--set", override]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"qgfd train: error: {message}") and len(err.splitlines()) == 1, err
    assert not out.exists()  # no run folder, so certainly no checkpoint


def test_a_missing_hub_encoder_is_reported_before_the_first_step(monkeypatch):
    """Hub data and models are looked up (and reported) before any phase trains."""
    config = load_run_config(
        SMOKE, ["phases.1.adapter=image", "phases.1.adapter_options={encoder_name_or_path: x}"]
    )
    config.phases[1].adapter_options["encoder_name_or_path"] = "qgfd-tests/no-such-model"
    notes, loaded = [], []
    with pytest.raises(ConfigError) as error:
        check_sources(config.phases, loaded.append, notes.append)
    assert str(error.value).startswith(
        "phases[1].adapter_options.encoder_name_or_path: cannot load 'qgfd-tests/no-such-model'"
    )
    assert loaded == config.phases  # every phase's data first
    assert notes == [
        "phase 'image': looking up encoder 'qgfd-tests/no-such-model' (the hub or its cache)"
    ]
