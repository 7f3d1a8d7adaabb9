"""DiffusionConfig: presets, dict round trip, and validation errors that name the field."""

import pytest

from qgfd_diffusion.models import DIFFUSION_PRESETS, DiffusionConfig


@pytest.mark.parametrize("name", sorted(DIFFUSION_PRESETS))
def test_presets_build_and_override(name):
    cfg = DiffusionConfig.preset(name, attention="sdpa")
    assert cfg.attention == "sdpa"
    assert cfg.d_model == DIFFUSION_PRESETS[name].d_model


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="preset must be one of.*tiny"):
        DiffusionConfig.preset("huge")


def test_dict_round_trip_and_unknown_keys():
    cfg = DiffusionConfig.preset("tiny", cond_dim=12, prediction_type="v_prediction")
    assert DiffusionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown DiffusionConfig field\(s\) \['bogus'\]"):
        DiffusionConfig.from_dict({**cfg.to_dict(), "bogus": 1})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"attention": "flash"}, "attention must be one of"),
        ({"prediction_type": "x0"}, "prediction_type must be one of"),
        ({"beta_schedule": "cosine"}, "beta_schedule must be one of"),
        ({"transition": "nope"}, "transition must be one of"),
        ({"transition": "graph"}, "transition='graph'"),
        ({"heat_mode": "auto"}, "heat_mode must be one of"),
        ({"difformer_variant": "b"}, "difformer_variant must be one of"),
        ({"qgfd_alpha": 1.5}, r"qgfd_alpha must be in \[0.0, 1.0\]"),
        ({"cond_dropout_prob": -0.1}, "cond_dropout_prob must be in"),
        ({"dropout": 2.0}, "dropout must be in"),
        ({"num_layers": 0}, "num_layers must be an int >= 1"),
        ({"qgfd_steps": -1}, "qgfd_steps must be an int >= 0"),
        ({"cond_dim": 0}, "cond_dim must be an int >= 1"),
        ({"d_model": 30, "num_heads": 4}, "d_model .* divisible by num_heads"),
        ({"qgfd_topk": 2, "transition": "linear"}, "qgfd_topk needs a softmax transition"),
        ({"beta_start": 0.1, "beta_end": 0.01}, "beta_end must be in"),
        ({"gradient_checkpointing": "yes"}, "gradient_checkpointing must be True or False"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig.preset("tiny", **overrides)


def test_attention_options_follow_the_kind():
    assert DiffusionConfig.preset("tiny", attention="sdpa").attention_options() == {}
    qgfd = DiffusionConfig.preset("tiny", qgfd_steps=3, qgfd_alpha=0.2).attention_options()
    assert qgfd["steps"] == 3 and qgfd["alpha"] == 0.2
    heat = DiffusionConfig.preset("tiny", attention="heat", heat_t=0.4).attention_options()
    assert heat == {"t": 0.4, "mode": "fixed", "depth": 2}
