"""QGFD in transformers models: the "qgfd" AttentionInterface entry and the seed-003 wrapper.

Tiny models built from configs (no hub), CPU, float32, fixed seeds (conftest).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch
from torch import Tensor, nn
from transformers import (
    BertConfig,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5EncoderModel,
    T5ForConditionalGeneration,
    TrainerControl,
    TrainerState,
    ViTConfig,
    ViTModel,
    Wav2Vec2Config,
    Wav2Vec2Model,
)

from qgfd_diffusion.attention import QGFDMultiheadAttention, QGFDOptions, QGFDState
from qgfd_diffusion.attention.hf import (
    HF_QGFD_DEFAULTS,
    MultiHeadQGFDLayer,
    QGFDStepCallback,
    qgfd_attention_forward,
    set_qgfd_step,
    wrap_model_with_qgfd,
)

# Every QGFD call below runs QGFD: a fallback to plain SDPA (a UserWarning) fails the test,
# except where a test expects it.
pytestmark = pytest.mark.filterwarnings("error:qgfd attention fell back:UserWarning")

B, L, VOCAB = 2, 7, 100
ATOL = 1e-5
T5_KW = dict(
    d_model=32,
    num_layers=2,
    num_heads=4,
    d_kv=8,
    d_ff=64,
    vocab_size=VOCAB,
    dropout_rate=0.0,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)


@dataclass
class Case:
    """A tiny model, its inputs and the output tensor to compare."""

    build: Callable[[str], nn.Module]  # attn_implementation -> model
    inputs: Callable[[], dict[str, Tensor]]
    output: Callable[[object], Tensor] = lambda out: out.last_hidden_state
    valid: Callable[[dict[str, Tensor]], Tensor] | None = None  # [B, L] rows to compare


def _text_inputs(decoder: bool = False) -> Callable[[], dict[str, Tensor]]:
    def make() -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(1)
        mask = torch.ones(B, L, dtype=torch.long)
        mask[1, L - 3 :] = 0  # right padding of the second sequence
        inputs = {"input_ids": torch.randint(2, VOCAB, (B, L), generator=g), "attention_mask": mask}
        if decoder:
            inputs["decoder_input_ids"] = torch.randint(2, VOCAB, (B, 5), generator=g)
        return inputs

    return make


def _left_padded_inputs() -> dict[str, Tensor]:
    inputs = _text_inputs()()
    inputs["attention_mask"] = inputs["attention_mask"].flip(-1)  # left padding (causal LM)
    return inputs


def _built(model_cls: type, config_cls: type, **kw) -> Callable[[str], nn.Module]:
    def build(attn: str) -> nn.Module:
        torch.manual_seed(0)
        return model_cls(config_cls(attn_implementation=attn, **kw)).eval()

    return build


CASES = {
    "t5-encoder": Case(_built(T5EncoderModel, T5Config, **T5_KW), _text_inputs()),
    "t5-seq2seq": Case(
        _built(T5ForConditionalGeneration, T5Config, **T5_KW),
        _text_inputs(decoder=True),
        lambda out: out.logits,
    ),
    "vit": Case(
        _built(
            ViTModel,
            ViTConfig,
            image_size=8,
            patch_size=4,
            num_channels=3,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        ),
        lambda: {
            "pixel_values": torch.randn(B, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        },
    ),
    "wav2vec2": Case(
        _built(
            Wav2Vec2Model,
            Wav2Vec2Config,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            conv_dim=(16, 16),
            conv_stride=(4, 4),
            conv_kernel=(8, 4),
            num_conv_pos_embeddings=8,
            num_conv_pos_embedding_groups=2,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            feat_proj_dropout=0.0,
            layerdrop=0.0,
            mask_time_prob=0.0,
        ),
        lambda: {"input_values": torch.randn(B, 400, generator=torch.Generator().manual_seed(1))},
    ),
    "bert": Case(
        _built(
            BertModel,
            BertConfig,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            vocab_size=VOCAB,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        ),
        _text_inputs(),
    ),
    "llama": Case(  # causal, grouped key/value heads, left padding
        _built(
            LlamaForCausalLM,
            LlamaConfig,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=VOCAB,
        ),
        _left_padded_inputs,
        lambda out: out.logits,
        lambda inputs: inputs["attention_mask"].bool(),
    ),
}
SEED_MODELS = ["t5-encoder", "t5-seq2seq", "vit", "wav2vec2", "bert"]


def _run(case: Case, model: nn.Module, inputs: dict[str, Tensor] | None = None) -> Tensor:
    inputs = case.inputs() if inputs is None else inputs
    out = case.output(model(**inputs))
    return out if case.valid is None else out[case.valid(inputs)]  # [B, L, D] or [valid, D]


def _wrapped(case: Case, **settings) -> nn.Module:
    settings = {"verbose": False, **settings}
    return wrap_model_with_qgfd(case.build("sdpa"), MultiHeadQGFDLayer, **settings)


# (a) alpha = 0 is plain attention ------------------------------------------------------------


@pytest.mark.parametrize("warmup_steps", [0, 100], ids=["float-alpha", "warmup-step0"])
@pytest.mark.parametrize("name", [*SEED_MODELS, "llama"])
def test_zero_alpha_matches_unwrapped(name: str, warmup_steps: int) -> None:
    case = CASES[name]
    plain = case.build("sdpa")
    wrapped = wrap_model_with_qgfd(
        copy.deepcopy(plain),
        MultiHeadQGFDLayer,
        verbose=False,
        target_alpha=0.0 if warmup_steps == 0 else 0.5,
        warmup_steps=warmup_steps,
    )
    assert wrapped.config._attn_implementation == "qgfd"
    torch.testing.assert_close(_run(case, wrapped), _run(case, plain), atol=ATOL, rtol=0)


# (b) alpha > 0 changes the model, stays finite and trains ------------------------------------


@pytest.mark.parametrize("name", [*SEED_MODELS, "llama"])
def test_positive_alpha_differs_and_trains(name: str) -> None:
    case = CASES[name]
    plain_out = _run(case, case.build("sdpa"))
    model = _wrapped(case, target_alpha=0.3, warmup_steps=0, diffusion_steps=2)
    out = _run(case, model)
    assert torch.isfinite(out).all()
    assert (out - plain_out).abs().max() > 1e-4  # exactly 0 at alpha = 0
    model.train()
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = (_run(case, model) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# (c) warm-up from the training step, state round trip ----------------------------------------


def test_alpha_warmup_follows_set_qgfd_step() -> None:
    model = _wrapped(CASES["bert"], target_alpha=0.2, warmup_steps=100)
    states = [m for m in model.modules() if isinstance(m, MultiHeadQGFDLayer)]
    assert set_qgfd_step(model, 0) == len(states) == 2
    for step, expected in [(0, 0.0), (50, 0.1), (100, 0.2), (400, 0.2)]:
        set_qgfd_step(model, step)
        for state in states:
            assert float(state.current_alpha()) == pytest.approx(expected)


def _warmed_up_states(holder: str) -> tuple[nn.Module, list[QGFDState]]:
    if holder == "kernel":
        model = QGFDMultiheadAttention(32, 4, alpha=0.2, alpha_mode="warmup", warmup_steps=100)
    else:
        model = _wrapped(CASES["bert"], target_alpha=0.2, warmup_steps=100)
    return model, [m for m in model.modules() if isinstance(m, QGFDState)]


@pytest.mark.parametrize("holder", ["kernel", "transformers"])
def test_warmup_alpha_comes_from_the_one_shared_holder(holder: str) -> None:
    model, states = _warmed_up_states(holder)
    assert states and all(type(s).current_alpha is QGFDState.current_alpha for s in states)
    for step in (0, 1, 37, 100, 2500):
        assert set_qgfd_step(model, step) == len(states)
        for state in states:
            alpha = state.current_alpha()
            assert isinstance(alpha, Tensor) and alpha.dim() == 0
            assert float(alpha) == pytest.approx(0.2 * min(1.0, step / 100))


def test_seed_spellings_and_defaults_of_the_module_state() -> None:
    assert MultiHeadQGFDLayer().options == HF_QGFD_DEFAULTS
    assert HF_QGFD_DEFAULTS == QGFDOptions(alpha=0.02, steps=4, transition="cosine")
    seed = MultiHeadQGFDLayer(target_alpha=0.5, diffusion_steps=3, temp=0.5, detach_P=True)
    expected = QGFDOptions(
        alpha=0.5, steps=3, temperature=0.5, detach_transition=True, transition="cosine"
    )
    assert seed.options == expected
    assert MultiHeadQGFDLayer(expected).options == expected
    assert MultiHeadQGFDLayer(warmup_steps=10).options.alpha_mode == "warmup"  # seed 003 rule
    model = _wrapped(CASES["bert"], target_alpha=0.5, warmup_steps=0, diffusion_steps=3, temp=0.5)
    options = {m.options for m in model.modules() if isinstance(m, MultiHeadQGFDLayer)}
    assert options == {replace(expected, detach_transition=False)}
    warm = _wrapped(CASES["bert"])  # the seed default warmup_steps=20000 turns the warm-up on
    assert {m.options.alpha_mode for m in warm.modules() if isinstance(m, QGFDState)} == {"warmup"}


def test_warmup_changes_output_only_through_the_step() -> None:
    case = CASES["bert"]
    model = _wrapped(case, target_alpha=0.3, warmup_steps=10)
    at_zero = _run(case, model)
    torch.testing.assert_close(_run(case, model), at_zero, atol=0, rtol=0)  # forward keeps step
    torch.testing.assert_close(at_zero, _run(case, case.build("sdpa")), atol=ATOL, rtol=0)
    set_qgfd_step(model, 5)  # halfway: the same as a fixed alpha of 0.15
    halfway = _run(case, _wrapped(case, target_alpha=0.15, warmup_steps=0))
    torch.testing.assert_close(_run(case, model), halfway, atol=ATOL, rtol=0)
    assert (halfway - at_zero).abs().max() > 1e-4


def test_step_buffer_round_trips_through_state_dict(tmp_path) -> None:
    case = CASES["t5-seq2seq"]
    model = _wrapped(case, warmup_steps=100)
    set_qgfd_step(model, 37)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    state_dict = torch.load(tmp_path / "model.pt")
    step_keys = [k for k in state_dict if k.endswith(".qgfd.step")]
    assert len(step_keys) == 6  # encoder self, decoder self and cross attention, 2 layers each
    assert [k for k in state_dict if ".qgfd." in k] == step_keys  # the keys of older checkpoints
    restored = _wrapped(case, warmup_steps=100)
    restored.load_state_dict(state_dict)
    assert all(int(m.step) == 37 for m in restored.modules() if isinstance(m, MultiHeadQGFDLayer))
    torch.testing.assert_close(_run(case, restored), _run(case, model), atol=0, rtol=0)


def test_trainer_callback_sets_the_global_step() -> None:
    model = _wrapped(CASES["vit"], warmup_steps=100)
    QGFDStepCallback().on_step_begin(
        None, TrainerState(global_step=42), TrainerControl(), model=model
    )
    assert {int(m.step) for m in model.modules() if isinstance(m, MultiHeadQGFDLayer)} == {42}


# (d) the registry alone equals the wrapper with the same settings ----------------------------


@pytest.mark.parametrize("name", [*SEED_MODELS, "llama"])
def test_registry_implementation_matches_wrapper(name: str) -> None:
    case = CASES[name]
    defaults = HF_QGFD_DEFAULTS  # what a module without a `qgfd` state runs
    wrapped = _wrapped(case, target_alpha=defaults.alpha, warmup_steps=0)
    by_name = case.build("qgfd")
    switched = case.build("sdpa")
    switched.set_attn_implementation("qgfd")
    expected = _run(case, wrapped)
    torch.testing.assert_close(_run(case, by_name), expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(_run(case, switched), expected, atol=ATOL, rtol=0)
    assert (expected - _run(case, case.build("sdpa"))).abs().max() > 1e-6


def test_from_pretrained_with_qgfd_implementation(tmp_path) -> None:
    case = CASES["t5-encoder"]
    case.build("sdpa").save_pretrained(tmp_path)
    loaded = T5EncoderModel.from_pretrained(tmp_path, attn_implementation="qgfd").eval()
    assert loaded.config._attn_implementation == "qgfd"
    torch.testing.assert_close(
        _run(case, loaded), _run(case, case.build("qgfd")), atol=ATOL, rtol=0
    )


# (e) bad settings name the field ------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("target_alpha", -0.1),
        ("target_alpha", 1.5),
        ("transition", "bogus"),
        ("transition", "graph"),  # a valid QGFDOptions transition that hf cannot run
        ("alpha_mode", "learnable"),
        ("diffusion_steps", -1),
        ("warmup_steps", 2.5),
        ("temp", 0.0),
        ("topk", 0),
        ("diffusion_stepz", 2),  # unknown: named
    ],
)
def test_bad_setting_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        MultiHeadQGFDLayer(**{field: value})
    with pytest.raises(ValueError, match=field):
        _wrapped(CASES["bert"], **{field: value})


def test_bad_step_and_model_without_registry_attention() -> None:
    model = _wrapped(CASES["bert"])
    with pytest.raises(ValueError, match="step"):
        set_qgfd_step(model, -1)
    with pytest.raises(ValueError, match="AttentionInterface"):
        wrap_model_with_qgfd(nn.Sequential(nn.Linear(4, 4)), verbose=False)
    with pytest.raises(TypeError, match="layer_cls"):
        wrap_model_with_qgfd(CASES["bert"].build("sdpa"), nn.Linear, verbose=False)


# masks: padding, causality, cached decoding, cross-attention ---------------------------------


@pytest.mark.parametrize("name", ["t5-seq2seq", "bert"])
def test_padded_tokens_get_no_mass(name: str) -> None:
    case = CASES[name]
    model = _wrapped(case, target_alpha=0.5, warmup_steps=0)
    inputs = case.inputs()
    changed = dict(inputs, input_ids=inputs["input_ids"].clone())
    changed["input_ids"][1, L - 3 :] = 3  # other tokens at the padded positions
    out, out_changed = _run(case, model, inputs), _run(case, model, changed)
    if name == "bert":  # encoder outputs: compare the real tokens only
        out, out_changed = (
            out[inputs["attention_mask"].bool()],
            out_changed[inputs["attention_mask"].bool()],
        )
    torch.testing.assert_close(out_changed, out, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["t5-seq2seq", "llama"])
def test_causal_outputs_ignore_future_tokens(name: str) -> None:
    case = CASES[name]
    model = _wrapped(case, target_alpha=0.5, warmup_steps=0)
    inputs = case.inputs()
    field = "decoder_input_ids" if "decoder_input_ids" in inputs else "input_ids"
    changed = dict(inputs, **{field: inputs[field].clone()})
    changed[field][:, -1] = 3
    out, out_changed = case.output(model(**inputs)), case.output(model(**changed))
    torch.testing.assert_close(out_changed[:, :-1], out[:, :-1], atol=ATOL, rtol=0)
    assert (out_changed[:, -1] - out[:, -1]).abs().max() > 1e-4


def test_cached_decoding_matches_full_pass() -> None:
    """With a cache the queries are the last positions only; P stays the causal one."""
    t5 = _wrapped(CASES["t5-seq2seq"], target_alpha=0.5, warmup_steps=0)
    enc = _text_inputs(decoder=True)()
    dec = enc.pop("decoder_input_ids")
    full = t5(**enc, decoder_input_ids=dec).logits
    first = t5(**enc, decoder_input_ids=dec[:, :3], use_cache=True)
    rest = t5(**enc, decoder_input_ids=dec[:, 3:], past_key_values=first.past_key_values)
    torch.testing.assert_close(rest.logits, full[:, 3:], atol=ATOL, rtol=0)

    llama = _wrapped(CASES["llama"], target_alpha=0.5, warmup_steps=0)
    inputs = _left_padded_inputs()
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    full = llama(**inputs).logits
    first = llama(input_ids=ids[:, :5], attention_mask=mask[:, :5], use_cache=True)
    for t in (5, 6):  # one token at a time
        decoded = llama(
            input_ids=ids[:, t : t + 1],
            attention_mask=mask[:, : t + 1],
            past_key_values=first.past_key_values,
            use_cache=True,
        )
        torch.testing.assert_close(decoded.logits[:, 0], full[:, t], atol=ATOL, rtol=0)


class _Module(nn.Module):
    is_causal = False


def test_cross_attention_mask_rows_reduce_or_fall_back() -> None:
    q, k, v = torch.randn(B, 4, 3, 8), torch.randn(B, 4, 5, 8), torch.randn(B, 4, 5, 8)
    padding = torch.ones(B, 1, 3, 5, dtype=torch.bool)
    padding[1, ..., 3:] = False  # the same key padding in every query row
    module = _Module()
    module.qgfd = MultiHeadQGFDLayer(target_alpha=0.5)
    out, weights = qgfd_attention_forward(module, q, k, v, padding)
    reduced, _ = qgfd_attention_forward(module, q, k, v, padding[..., :1, :])
    assert out.shape == (B, 3, 4, 8) and weights is None
    torch.testing.assert_close(out, reduced, atol=0, rtol=0)
    ragged = padding.clone()
    ragged[0, 0, 0, 0] = False  # rows differ: cannot apply to P over keys
    with pytest.warns(UserWarning, match="plain SDPA"):
        fallback, _ = qgfd_attention_forward(module, q, k, v, ragged)
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=ragged)
    torch.testing.assert_close(fallback, sdpa.transpose(1, 2), atol=0, rtol=0)


def test_verbose_reports_wrapped_modules(capsys) -> None:
    wrap_model_with_qgfd(CASES["t5-seq2seq"].build("sdpa"), MultiHeadQGFDLayer, verbose=True)
    printed = capsys.readouterr().out
    assert "6 attention modules" in printed and "T5Attention x6" in printed


def test_float64_zero_alpha_is_exact() -> None:
    case = CASES["t5-seq2seq"]
    plain = case.build("sdpa").double()
    wrapped = wrap_model_with_qgfd(
        copy.deepcopy(plain), verbose=False, target_alpha=0.5, warmup_steps=10
    )  # step 0: alpha tensor 0 through the kernel
    torch.testing.assert_close(_run(case, wrapped), _run(case, plain), atol=1e-12, rtol=0)
