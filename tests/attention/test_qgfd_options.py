"""QGFDOptions: one vocabulary (prototype spellings mapped once), one alpha holder (QGFDState)."""

import dataclasses

import pytest
import torch

from qgfd_diffusion.attention import (
    PROTOTYPE_ALIASES,
    QGFDKernel,
    QGFDLayer,
    QGFDMultiheadAttention,
    QGFDOptions,
    QGFDState,
    canonical_qgfd_keys,
    functional,
    kernels,
    make_attention,
    make_attention_kernel,
    options,
    qgfd_options,
    set_qgfd_step,
)

B, H, L, D = 2, 4, 9, 32

# A non-default value for every field that a prototype spelling maps to.
NON_DEFAULT = dict(
    steps=5,
    alpha=0.4,
    temperature=0.5,
    detach_transition=True,
    topk=3,
    alpha_mode="warmup",
    warmup_steps=7,
)


@pytest.mark.parametrize("alias, field", sorted(PROTOTYPE_ALIASES.items()))
def test_every_seed_alias_maps_to_its_field(alias, field):
    value = NON_DEFAULT[field]
    assert qgfd_options(**{alias: value}) == QGFDOptions(**{field: value})
    assert canonical_qgfd_keys({alias: value}) == {field: value}
    assert getattr(QGFDOptions.from_dict({alias: value}), field) == value


def test_seed_spellings_together_and_on_top_of_a_base():
    seed_003 = qgfd_options(diffusion_steps=4, target_alpha=0.02, temp=0.5, detach_P=True)
    assert seed_003 == QGFDOptions(steps=4, alpha=0.02, temperature=0.5, detach_transition=True)
    base = QGFDOptions(transition="cosine", steps=3)
    assert qgfd_options(base, target_alpha=0.3) == QGFDOptions(
        transition="cosine", steps=3, alpha=0.3
    )
    assert qgfd_options(base) == base and qgfd_options() == QGFDOptions()


@pytest.mark.parametrize(
    "given",
    [
        dict(steps=2, diffusion_steps=3),
        dict(alpha=0.1, target_alpha=0.2),
        dict(qgfd_alpha=0.1, target_alpha=0.2),
        dict(temperature=1.0, temp=2.0),
        dict(detach_transition=True, detach_P=False),
    ],
)
def test_a_field_given_twice_in_two_spellings_is_an_error(given):
    first, second = given
    with pytest.raises(ValueError, match=rf"given twice, as '{first}' and '{second}'"):
        qgfd_options(**given)
    with pytest.raises(ValueError, match="model.qgfd: .* given twice"):
        QGFDOptions.from_dict(given, where="model.qgfd")


def test_unknown_keys_are_named_with_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown QGFD option\(s\) \['stepz'\].*'steps'"):
        qgfd_options(stepz=3)
    with pytest.raises(ValueError, match=r"\['qgfd_stepz'\]"):
        canonical_qgfd_keys({"qgfd_stepz": 3, "alpha": 0.1})
    with pytest.raises(ValueError, match="stepz"):
        QGFDKernel(H, stepz=3)


@pytest.mark.parametrize(
    "given, pattern",
    [
        (dict(target_alpha=1.5), r"alpha must be in .* \(alpha given as 'target_alpha'\)"),
        (dict(diffusion_steps=-1), r"steps must be .* \(steps given as 'diffusion_steps'\)"),
        (dict(temp=0.0), r"temperature must be .* given as 'temp'"),
        (dict(alpha=1.5), r"^alpha must be in"),
        (dict(transition="bogus"), "transition must be one of"),
        (dict(topk=2, transition="linear"), "topk needs a softmax transition"),
        (dict(detach_P="yes"), "detach_transition must be True or False"),
    ],
)
def test_invalid_values_name_the_field_and_its_seed_spelling(given, pattern):
    with pytest.raises(ValueError, match=pattern):
        qgfd_options(**given)


def test_options_are_frozen_and_round_trip_through_a_dict():
    o = QGFDOptions(alpha=0.3, steps=None, transition="cosine", topk=4, path="fused")
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.alpha = 0.5
    assert QGFDOptions.from_dict(o.to_dict()) == o
    assert set(o.kernel_kwargs()) == set(QGFDOptions.field_names()) - {
        "alpha",
        "alpha_mode",
        "warmup_steps",
    }


def test_literal_types_have_one_home():
    for name in ("TransitionKind", "IterationKind", "PathKind", "SolverKind", "NonConvergence"):
        assert getattr(functional, name) is getattr(options, name)
    assert kernels.AlphaMode is options.AlphaMode


def _qkv():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(B, H, L, D // H, generator=g, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize(
    "keywords",
    [
        dict(alpha=0.3, steps=2),
        dict(alpha=0.5, steps=3, transition="cosine", temperature=0.5, topk=4),
        dict(alpha=0.2, steps=None, iteration="ppr"),
        dict(alpha=0.3, steps=2, alpha_mode="learnable"),
    ],
)
def test_options_object_equals_the_keyword_form(keywords):
    o = QGFDOptions(**keywords)
    by_keywords = QGFDKernel(H, **keywords).double()
    by_options = QGFDKernel(H, options=o).double()
    by_factory = make_attention_kernel("qgfd", H, options=o).double()
    assert by_keywords.options == by_options.options == by_factory.options == o
    q, k, v = _qkv()
    expected = by_keywords(q, k, v)
    torch.testing.assert_close(by_options(q, k, v), expected, atol=0, rtol=0)
    torch.testing.assert_close(by_factory(q, k, v), expected, atol=0, rtol=0)


def test_keywords_fold_over_the_options_object_and_modules_take_either():
    base = QGFDOptions(alpha=0.3, steps=2, transition="cosine")
    kernel = QGFDKernel(H, base, diffusion_steps=4, temp=0.5)
    assert kernel.options == dataclasses.replace(base, steps=4, temperature=0.5)
    torch.manual_seed(0)
    by_options = make_attention("qgfd", D, H, dropout=0.0, options=base)
    by_keywords = QGFDMultiheadAttention(D, H, alpha=0.3, steps=2, transition="cosine")
    by_keywords.load_state_dict(by_options.state_dict())
    x = torch.randn(B, L, D)
    torch.testing.assert_close(by_options(x), by_keywords(x), atol=0, rtol=0)


@pytest.mark.parametrize(
    "alpha_mode, keys",
    [
        ("fixed", {"kernel.step"}),
        ("warmup", {"kernel.step"}),
        ("learnable", {"kernel.step", "kernel.alpha_logit"}),
    ],
)
def test_state_dict_keys_are_those_of_older_checkpoints(alpha_mode, keys):
    names = ("q_proj", "k_proj", "v_proj", "out_proj")
    projections = {f"{p}.{w}" for p in names for w in ("weight", "bias")}
    module = QGFDMultiheadAttention(D, H, alpha=0.3, alpha_mode=alpha_mode, warmup_steps=10)
    assert set(module.state_dict()) == projections | keys
    # A checkpoint written before QGFDOptions: the same keys load strictly into the new module.
    old = {name: torch.zeros_like(t) for name, t in module.state_dict().items()}
    old["kernel.step"] = torch.tensor(5)
    if alpha_mode == "learnable":
        old["kernel.alpha_logit"] = torch.tensor([0.0, 1.0, -1.0, 2.0])
    restored = QGFDMultiheadAttention(D, H, alpha=0.3, alpha_mode=alpha_mode, warmup_steps=10)
    restored.load_state_dict(old, strict=True)
    assert int(restored.kernel.step) == 5
    expected = {
        "fixed": 0.3,
        "warmup": 0.3 * 5 / 10,
        "learnable": torch.sigmoid(torch.tensor([0.0, 1.0, -1.0, 2.0])),
    }[alpha_mode]
    torch.testing.assert_close(
        torch.as_tensor(restored.kernel.current_alpha()), torch.as_tensor(expected)
    )


def test_alpha_is_a_float_when_constant_and_a_tensor_otherwise():
    assert QGFDKernel(H, alpha=0.3).current_alpha() == 0.3
    assert QGFDKernel(H, alpha=0.3, alpha_mode="warmup").current_alpha() == 0.3  # no length
    assert QGFDKernel(H, alpha=0.0, alpha_mode="warmup", warmup_steps=5).current_alpha() == 0.0
    warm = QGFDKernel(H, alpha=0.3, alpha_mode="warmup", warmup_steps=5).current_alpha()
    assert isinstance(warm, torch.Tensor) and warm.shape == ()
    assert QGFDKernel(H, alpha=0.3, alpha_mode="learnable").current_alpha().shape == (H,)
    with pytest.raises(ValueError, match="num_heads"):
        QGFDState(QGFDOptions(alpha_mode="learnable"))
    with pytest.raises(TypeError, match="QGFDOptions"):
        QGFDState({"alpha": 0.3})


def test_set_qgfd_step_reaches_every_state_and_forward_never_moves_it():
    model = torch.nn.ModuleList(
        [
            QGFDMultiheadAttention(D, H, alpha=0.2, alpha_mode="warmup", warmup_steps=100),
            QGFDState(QGFDOptions(alpha=0.2, alpha_mode="warmup", warmup_steps=100)),
        ]
    )
    assert set_qgfd_step(model, 25) == 2
    model[0](torch.randn(B, L, D))
    assert [int(m.step) for m in model.modules() if isinstance(m, QGFDState)] == [25, 25]
    with pytest.raises(ValueError, match="step"):
        set_qgfd_step(model, -1)


def test_seed_000_layer_holds_its_settings_once():
    layer = QGFDLayer(dim=8, topk=3, diffusion_steps=6, alpha=0.85, detach_transition=True)
    assert layer.options == QGFDOptions(alpha=0.85, steps=6, topk=3, detach_transition=True)
    assert (layer.alpha, layer.diffusion_steps, layer.topk) == (0.85, 6, 3)
    with pytest.raises(ValueError, match="diffusion_steps"):
        QGFDLayer(dim=8, diffusion_steps=-1)
