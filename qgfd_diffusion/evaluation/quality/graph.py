"""The ``graph`` scorer: a graph-signal denoiser against the exact Bayes denoiser of its GMRF data.

Dimension legend: M held-out samples, N nodes, C shared latent width.

Per trained run (the graph study, configs/eval/graph.yaml):

* ``mse_over_bayes_<s2>``: held-out x0-MSE of the denoiser at the DDPM timestep whose noise level
  sigma^2 = (1 - a_bar) / a_bar is nearest to s2, divided by the exact Bayes MSE at that very
  sigma^2 (``evaluation.gmrf``); 1 is the best any denoiser can do. The Bayes denoiser's own MSE
  on the same noise draws is reported next to it (``bayes_draw_mse_<s2>`` / ``bayes_mse_<s2>``).
* samples: DDIM (the run's ``sample`` settings) on the held-out graphs, whitened by each graph's
  Cholesky factor: Frechet distance to N(0, I) over the same distance of the real held-out
  signals (``fd_over_floor``; same count), and mean ||z||^2 / N (real data: 1).
* ``step_time_vs_sdpa``: one training step (forward + backward) of this backbone over the same
  step of a reference twin (``reference_model``: plain sdpa by default), timed side by side on
  the same batch in this process, median of ``timing_repeats``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ...checks import check_int
from ...data.bundled.gmrf import gmrf_covariance
from ...data.bundled.graph_signals import DEFAULT_EPS
from ...data.splits import load_phase_data
from ...models.backbone import QGFDDiffusionBackbone
from ...sample import generate as generate_modality
from ...sample import make_scheduler
from ...schedules.training import predict_x0
from ..gmrf import bayes_denoise, bayes_mse, sigma2_of_alpha_bar, whiten, whitened_report
from .common import ScoringJob

# sigma^2 at which the denoiser is scored, a decade apart (the study's written rules,
# docs/quality/graph/rules.md); 10, the middle one, is the headline.
NOISE_LEVELS = (1.0, 10.0, 100.0)


@dataclass
class GraphSettings:
    """phase: the graph-signal phase; heldout: held-out samples scored (MSE and sampling, on
    their graphs); sample_batch: samples per sampler call; noise_seed: the noise draws of the
    MSE; reference_model: model fields replaced to build the step-time reference;
    timing_repeats: timed steps of each of the two backbones."""

    phase: str
    heldout: int = 256
    sample_batch: int = 128
    noise_seed: int = 1234
    reference_model: dict[str, Any] = field(
        default_factory=lambda: dict(
            attention="sdpa", graph_mask=False, graph_positions=0, alpha_from_timestep=False
        )
    )
    timing_repeats: int = 5

    def __post_init__(self):
        for name in ("heldout", "sample_batch", "timing_repeats"):
            check_int(name, getattr(self, name), 1)
        if self.heldout < 4:
            raise ValueError(f"heldout must be >= 4 for a covariance, got {self.heldout}")


def mse_name(sigma2: float) -> str:
    return f"mse_over_bayes_{sigma2:g}"


def heldout_batch(
    job: ScoringJob, settings: GraphSettings
) -> tuple[dict[str, torch.Tensor], float]:
    """The first ``heldout`` validation examples as a raw batch, and the data's GMRF eps."""
    phase = job.phase(settings.phase)
    data = load_phase_data(phase.data, job.config.seed)
    count = min(settings.heldout, len(data.validation))
    rows = data.validation[:count]
    raw = {key: torch.as_tensor(rows[key]).float() for key in ("signal", "adjacency")}
    return raw, float(phase.data.options.get("eps", DEFAULT_EPS))


@torch.no_grad()
def denoising_scores(job: ScoringJob, name: str, raw: dict, S: torch.Tensor, seed: int) -> dict:
    """mse_over_bayes at each noise level of ``NOISE_LEVELS`` (module docstring)."""
    model = job.model
    scheduler = model.scheduler
    batch = model.encode(name, raw)  # shared-space x0 [M, N, C] and the graphs
    sigma2_of_t = sigma2_of_alpha_bar(scheduler.alphas_cumprod.double())  # [T]
    generator = torch.Generator().manual_seed(seed)
    x0 = raw["signal"].double()  # [M, N]
    scores: dict[str, float] = {}
    for target in NOISE_LEVELS:
        t = int((sigma2_of_t - target).abs().argmin())
        sigma2 = float(sigma2_of_t[t])
        timesteps = torch.full((x0.shape[0],), t, dtype=torch.long)
        noise = torch.randn(batch.latents.shape, generator=generator)
        x_t = scheduler.add_noise(batch.latents, noise, timesteps)  # [M, N, C]
        prediction = model.backbone(
            x_t, timesteps, layout=batch.layout, graph=batch.graph, modality=model.modality_id(name)
        )
        x0_hat = model.latent_maps[name].inverse(predict_x0(scheduler, prediction, x_t, timesteps))
        model_mse = float(((x0_hat[..., 0].double() - x0) ** 2).mean())
        # The same observation in the GMRF's units: x_t / sqrt(a_bar) = x0 + sigma eps.
        y = model.latent_maps[name].inverse(x_t)[..., 0].double() / math.sqrt(1 / (1 + sigma2))
        bayes_draws = float(((bayes_denoise(S, y, sigma2) - x0) ** 2).mean())
        exact = float(bayes_mse(S, sigma2).mean())
        scores[mse_name(target)] = model_mse / exact
        scores[f"bayes_draw_mse_{target:g}"] = bayes_draws
        scores[f"bayes_mse_{target:g}"] = exact
        scores[f"sigma2_{target:g}"] = sigma2
    return scores


def sample_scores(job: ScoringJob, name: str, raw: dict, S: torch.Tensor, batch: int) -> dict:
    """DDIM samples on the held-out graphs, whitened, against the real held-out signals."""
    options = job.config.sample
    generator = torch.Generator().manual_seed(job.config.seed)
    scheduler = make_scheduler(options.scheduler, job.model.schedule)
    chunks = []
    for start in range(0, len(S), batch):
        graphs = raw["adjacency"][start : start + batch]
        output = generate_modality(
            job.model,
            name,
            len(graphs),
            generator=generator,
            scheduler=scheduler,
            num_inference_steps=options.num_inference_steps,
            eta=options.eta,
            graph=graphs,
        )
        chunks.append(output.decoded)
    generated = whitened_report(whiten(torch.cat(chunks), S))
    real = whitened_report(whiten(raw["signal"], S))
    return {
        "frechet_to_normal": generated["frechet_to_normal"],
        "real_frechet_to_normal": real["frechet_to_normal"],
        "fd_over_floor": generated["frechet_to_normal"] / real["frechet_to_normal"],
        "mean_sq_norm": generated["mean_sq_norm"],
        "real_mean_sq_norm": real["mean_sq_norm"],
    }


def step_time_vs_reference(job: ScoringJob, name: str, raw: dict, settings: GraphSettings) -> dict:
    """Median seconds of a training step of the run's backbone and of its reference twin."""
    model = job.model
    batch = model.encode(name, raw).select(slice(0, job.phase(settings.phase).batch_size))
    twins = {
        "model": model.backbone,
        "reference": QGFDDiffusionBackbone(
            replace(model.backbone.network_config, **settings.reference_model)
        ),
    }
    seconds: dict[str, list[float]] = {key: [] for key in twins}
    for _ in range(settings.timing_repeats + 1):  # the first round warms up, then is dropped
        for key, backbone in twins.items():
            seconds[key].append(_timed_step(model, backbone, batch, name))
    model_s, reference_s = (statistics.median(seconds[key][1:]) for key in twins)
    return {"step_seconds": model_s, "step_time_vs_sdpa": model_s / reference_s}


def _timed_step(model, backbone, batch, name: str) -> float:
    backbone.train()
    started = time.perf_counter()
    loss = model.objective(
        backbone,
        batch,
        generator=torch.Generator().manual_seed(0),
        modality=model.modality_id(name),
    ).loss
    loss.backward()
    backbone.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    backbone.eval()
    return seconds


def score_graph(job: ScoringJob) -> dict[str, Any]:
    settings: GraphSettings = job.settings
    name = job.phase(settings.phase).name
    raw, eps = heldout_batch(job, settings)
    S = gmrf_covariance(raw["adjacency"], eps)  # [M, N, N]
    return {
        **denoising_scores(job, name, raw, S, settings.noise_seed),
        **sample_scores(job, name, raw, S, settings.sample_batch),
        **step_time_vs_reference(job, name, raw, settings),
    }


HEADLINE = (
    *((mse_name(s2), False) for s2 in NOISE_LEVELS),
    ("fd_over_floor", False),
    ("mean_sq_norm", False),
    ("step_time_vs_sdpa", False),
)
