"""DiffusionConfig: presets, the network / schedule split, prototype-001 keys, validation errors."""

import pytest

from qgfd_diffusion.attention import QGFDOptions
from qgfd_diffusion.models import DIFFUSION_PRESETS, DiffusionConfig
from qgfd_diffusion.schedules import NoiseScheduleConfig


@pytest.mark.parametrize("name", sorted(DIFFUSION_PRESETS))
def test_presets_build_and_override(name):
    cfg = DiffusionConfig.preset(name, attention="sdpa")
    assert cfg.attention == "sdpa"
    assert cfg.d_model == DIFFUSION_PRESETS[name]["d_model"]
    assert cfg.cond_dim == cfg.d_model  # condition tokens as wide as the model (seed 001)
    wider = DiffusionConfig.preset(name, d_model=1024)
    assert wider.cond_dim == 1024  # follows the width it was given, not the preset's


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="preset must be one of.*tiny"):
        DiffusionConfig.preset("huge")


def test_dict_round_trip_and_unknown_keys():
    cfg = DiffusionConfig.preset("tiny", cond_dim=12, prediction_type="v_prediction")
    assert DiffusionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown DiffusionConfig field\(s\) \['bogus'\]"):
        DiffusionConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_seed_001_spellings_fold_into_their_one_home():
    seed = DiffusionConfig(
        d_model=512, num_heads=8, num_layers=4, d_ff=2048, latent_dim=512, num_timesteps=1000,
        qgfd_steps=1,
    )  # fmt: skip
    assert seed.num_timesteps == 1000 == seed.schedule.num_train_timesteps
    assert seed.qgfd == QGFDOptions(steps=1)
    flat = DiffusionConfig(
        qgfd_alpha=0.3, transition="cosine", qgfd_temperature=0.5, beta_schedule="scaled_linear",
        prediction_type="sample",
    )  # fmt: skip
    nested = DiffusionConfig(
        qgfd={"alpha": 0.3, "transition": "cosine", "temperature": 0.5},
        schedule={"beta_schedule": "scaled_linear", "prediction_type": "sample"},
    )
    assert flat == nested
    assert "qgfd_alpha" not in flat.to_dict() and "num_timesteps" not in flat.to_dict()
    with pytest.raises(ValueError, match="given both flat .* and inside"):
        DiffusionConfig(qgfd_alpha=0.2, qgfd={"alpha": 0.3})


def test_network_part_has_no_schedule():
    cfg = DiffusionConfig.preset("tiny", num_timesteps=30)
    network = cfg.network_dict()
    assert "schedule" not in network and network["qgfd"] == QGFDOptions().to_dict()
    bare = cfg.network_only()
    assert bare.schedule is None
    with pytest.raises(AttributeError, match="network only"):
        bare.num_timesteps  # noqa: B018
    assert bare.with_schedule(NoiseScheduleConfig(30)) == cfg


def test_num_modalities_follows_the_model_unless_given():
    assert DiffusionConfig().num_modalities is None
    assert DiffusionConfig().with_modalities(3).num_modalities == 3
    assert DiffusionConfig(num_modalities=2).with_modalities(3).num_modalities == 2


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"attention": "flash"}, "attention must be one of"),
        ({"prediction_type": "x0"}, "prediction_type must be one of"),
        ({"beta_schedule": "cosine"}, "beta_schedule must be one of"),
        ({"transition": "nope"}, "transition must be one of"),
        ({"layout_graph": "ring"}, "layout_graph must be one of"),
        ({"heat_mode": "auto"}, "heat_mode must be one of"),
        ({"difformer_variant": "b"}, "difformer_variant must be one of"),
        ({"qgfd_alpha": 1.5}, r"alpha must be in \[0.0, 1.0\]"),
        ({"qgfd": {"steps": -1}}, "steps must be an int >= 0"),
        ({"qgfd": {"alpah": 0.1}}, r"unknown QGFD option\(s\) \['alpah'\]"),
        ({"cond_dropout_prob": -0.1}, "cond_dropout_prob must be in"),
        ({"dropout": 2.0}, "dropout must be in"),
        ({"num_layers": 0}, "num_layers must be an int >= 1"),
        ({"qgfd_steps": -1}, "steps must be an int >= 0"),
        ({"cond_dim": 0}, "cond_dim must be an int >= 1"),
        ({"num_modalities": 0}, "num_modalities must be an int >= 1"),
        ({"d_model": 30, "num_heads": 4}, "d_model .* divisible by num_heads"),
        ({"qgfd_topk": 2, "transition": "linear"}, "topk needs a softmax transition"),
        ({"beta_start": 0.1, "beta_end": 0.01}, "beta_end must be in"),
        ({"num_timesteps": 0}, "num_train_timesteps must be an int >= 1"),
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing must be True or False"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig.preset("tiny", **overrides)


def test_attention_options_follow_the_kind():
    assert DiffusionConfig.preset("tiny", attention="sdpa").attention_options() == {}
    qgfd = DiffusionConfig.preset("tiny", qgfd_steps=3, qgfd_alpha=0.2).attention_options()
    assert qgfd == {"options": QGFDOptions(steps=3, alpha=0.2)}
    heat = DiffusionConfig.preset("tiny", attention="heat", heat_t=0.4).attention_options()
    assert heat == {"t": 0.4, "mode": "fixed", "depth": 2}
