"""The training loop: phases on one backbone, on HF accelerate, resumable bit for bit.

The loop lives here; around it: opening the run folder and the resume choice (run_folder.py),
a checkpoint read back as a model (checkpoint_model.py), the end of the run (export.py) and
the trackers' samples (tracker_samples.py).

Run folder (``output_dir``):
    config.json          the resolved run config
    metrics.jsonl        one line per optimiser step: step, phase, loss, lr, grad_norm, ...
    validation.jsonl     after each phase, the validation loss of every phase so far (forgetting)
    checkpoints/         complete checkpoints only (see checkpoint.py), the last K kept
    final/               a QGFDPipeline folder (model_index.json, backbone/, backbone_ema/,
                         scheduler/, adapters/) + run_config.json, train_summary.json
    samples/<phase>/     samples of every phase, written at the end
    tensorboard/         accelerate's TensorBoard tracker (train.log_with): scalars, sample grids

Data parallelism: every process reads the same global batch, encodes it with the frozen adapter
and draws t, eps and the guidance-dropout mask for the whole batch from one seeded generator;
each process then trains on its own slice. DDP averages the gradients, so N processes match one
process at the same global batch. ``accelerate launch`` / ``torchrun`` start the processes.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..attention.kernels import set_qgfd_step
from ..data.bundled.graph_signals import dataset_graphs
from ..data.loader import infinite_batches, make_dataloader
from ..data.splits import PhaseData, load_phase_data
from ..models.multimodal import SharedQGFDDiffusionModel
from .checkpoint import capture_rng_state, load_part, restore_rng_state, save_checkpoint
from .checkpoint_model import restore_model
from .config import PhaseConfig, RunConfig
from .errors import TrainingError
from .export import check_finite_weights, export_final
from .logs import TRACKER_FOLDER, MetricsLog
from .phases import build_phase_adapter, check_sources
from .run_folder import open_run_folder
from .tracker_samples import log_tracker_samples

VALIDATION_SEED_OFFSET = 10_000  # validation noise is drawn apart from the training stream
log = logging.getLogger(__name__)  # one line per note: what a check waits for

__all__ = ["LoopState", "Trainer", "TrainingError"]


@dataclass
class LoopState:
    global_step: int = 0
    phase_index: int = 0
    phase_step: int = 0
    nonfinite: int = 0


@dataclass
class PhaseRun:
    """What one phase trains with: loaders (train and optional replay), optimiser, LR schedule."""

    config: PhaseConfig
    loader: Any
    batches: Any
    optimizer: Any
    lr_scheduler: Any
    replay_loader: Any = None
    replay_batches: Any = None


class Trainer:
    def __init__(
        self,
        config: RunConfig,
        output_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        lock: bool = True,
    ):
        """lock: take the run folder's lock (``run_lock``); False only where the file system
        cannot lock and nothing else trains in the folder."""
        self.config, self.out, self.progress = config, Path(output_dir), progress
        # Without an accelerator, accelerate runs multi-process jobs (torchrun / accelerate
        # launch) as gloo data parallelism only when told it is on CPU.
        self.accelerator = Accelerator(
            mixed_precision=config.train.mixed_precision,
            cpu=not torch.accelerator.is_available(),
            log_with=config.train.log_with or None,
            project_config=ProjectConfiguration(
                project_dir=str(self.out), logging_dir=str(self.out / TRACKER_FOLDER)
            ),
        )
        self.run_folder = open_run_folder(
            self.out, config, resume=resume, is_main=self.is_main, lock=lock
        )
        self.checkpoint = self.run_folder.checkpoint
        _seed_everything(config.seed)
        self.model = SharedQGFDDiffusionModel(config.model_config())
        self.objective = self.model.training_objective(config.train.min_snr_gamma)
        self.backbone = self.accelerator.prepare(self.model.backbone)
        self.ema = EMAModel(
            self.model.backbone.parameters(), decay=config.train.ema_decay, use_ema_warmup=True
        )
        self.generator = torch.Generator().manual_seed(config.seed)  # t, eps, guidance dropout
        self.state = LoopState()
        self.data: dict[str, PhaseData] = {}
        self.log = MetricsLog(self.out, enabled=self.is_main, accelerator=self.accelerator)
        if resume and self.checkpoint is None:  # what a run killed before its first checkpoint
            self.log.truncate(0, phases_done=0)  # logged goes: this run starts from step 0

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # -- run --------------------------------------------------------------------------------

    def fit(self) -> Path:
        """Train every phase (resuming where the checkpoint left off); returns ``final/``.

        The run folder's lock is given back when ``fit`` ends, however it ends."""
        try:
            return self._fit()
        finally:
            self.run_folder.close()

    def _fit(self) -> Path:
        with self.accelerator.main_process_first():  # hub data and models before any work
            check_sources(self.config.phases, self._phase_data, log.info)
        resume_parts = self._restore(self.checkpoint) if self.checkpoint else None
        self.log.start(self.config.to_dict())
        for index in range(self.state.phase_index, len(self.config.phases)):
            self._run_phase(index, resume_parts)
            resume_parts = None
        final = export_final(
            self.out,
            self.model,
            self.ema,
            self.config,
            asdict(self.state),
            self.accelerator,
            self.sample_graphs,
        )
        self.log.close()
        return final

    def _run_phase(self, index: int, resume_parts: dict | None) -> None:
        phase = self.config.phases[index]
        run = self._start_phase(index, resume_parts)
        bar = tqdm(
            total=phase.steps,
            initial=self.state.phase_step,
            desc=f"phase {phase.name}",
            disable=not (self.progress and self.is_main),
        )
        while self.state.phase_step < phase.steps:
            name, raw = self._next_batch(run)
            started = time.perf_counter()
            result = self._train_step(name, raw, run)
            if result is None:
                continue
            loss, grad_norm, batch_size = result
            self.state.phase_step += 1
            self.state.global_step += 1
            run.lr_scheduler.step()
            self.ema.step(self.model.backbone.parameters())
            set_qgfd_step(self.model.backbone, self.state.global_step)
            elapsed = time.perf_counter() - started
            self.log.step(
                step=self.state.global_step,
                phase=phase.name,
                batch_phase=name,
                loss=loss,
                lr=run.lr_scheduler.get_last_lr()[0],
                grad_norm=grad_norm,
                nonfinite_skipped=self.state.nonfinite,
                samples_per_sec=batch_size / max(elapsed, 1e-9),
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            self._maybe_log_samples(phase)
            due = self.state.global_step % self.config.train.checkpoint_every == 0
            if due and self.state.phase_step < phase.steps:  # the last step: the boundary's
                self._save_checkpoint(run)
        bar.close()
        self._validate_all(index)
        self.state.phase_index, self.state.phase_step = index + 1, 0
        self._save_checkpoint(None)  # the phase boundary

    def _start_phase(self, index: int, resume_parts: dict | None) -> PhaseRun:
        phase = self.config.phases[index]
        if phase.name not in self.model.adapters:
            with (
                self.accelerator.main_process_first()
            ):  # one process builds shared files (encoders)
                adapter = build_phase_adapter(
                    phase, self._phase_data(phase), self.out, self.config.seed + index
                )
            self.model.add_modality(phase.name, adapter)
        loader = self._loader(phase, index)
        optimizer = torch.optim.AdamW(
            self.model.backbone.parameters(),
            lr=phase.lr,
            betas=tuple(self.config.train.adam_betas),
            weight_decay=phase.weight_decay,
        )
        schedule = "cosine" if self.config.train.lr_schedule == "cosine" else "constant_with_warmup"
        lr_scheduler = get_scheduler(
            schedule, optimizer, num_warmup_steps=phase.warmup_steps, num_training_steps=phase.steps
        )
        run = PhaseRun(phase, loader, None, self.accelerator.prepare(optimizer), lr_scheduler)
        if phase.replay_phase is not None:
            replay_index = [p.name for p in self.config.phases].index(phase.replay_phase)
            run.replay_loader = self._loader(self.config.phases[replay_index], replay_index)
        if resume_parts is not None:
            self._restore_phase(run, resume_parts)
        run.batches = infinite_batches(run.loader)
        run.replay_batches = run.replay_loader and infinite_batches(run.replay_loader)
        return run

    def _loader(self, phase: PhaseConfig, index: int):
        data = self._phase_data(phase)
        return make_dataloader(
            data.train, data.modality, phase.batch_size, seed=self.config.seed + index
        )

    def _phase_data(self, phase: PhaseConfig) -> PhaseData:
        if phase.name not in self.data:
            self.data[phase.name] = load_phase_data(phase.data, self.config.seed)
        return self.data[phase.name]

    def _next_batch(self, run: PhaseRun) -> tuple[str, Any]:
        """(modality name, raw global batch): the phase's data, or a replay batch every k steps."""
        phase = run.config
        replay_due = phase.replay_every and (self.state.phase_step + 1) % phase.replay_every == 0
        if run.replay_batches is not None and replay_due:
            return phase.replay_phase, next(run.replay_batches)
        return phase.name, next(run.batches)

    # -- one optimiser step -----------------------------------------------------------------

    def _train_step(self, name: str, raw: Any, run: PhaseRun) -> tuple[float, float, int] | None:
        """Forward, backward, clip, step; None (and nothing updated) when it is not finite.

        The global batch's draws are made at once, then each process trains on its shard, in
        ``gradient_accumulation_steps`` micro-batches whose gradients add up before one
        optimiser step. Written by hand rather than with ``accelerator.accumulate``, which
        takes each micro-batch from the loader and would draw its noise apart: here K
        micro-batches see exactly the batch and noise of one large step.
        """
        batch = self.model.encode(name, self.model.adapters[name].prepare_batch(raw))
        dropout = run.config.cond_dropout
        draws = self.objective.draw(
            batch,
            generator=self.generator,
            cond_dropout=self.config.model.cond_dropout_prob if dropout is None else dropout,
        )
        micro_batches = self._micro_batches(batch.latents.shape[0])
        loss = torch.zeros((), device=batch.latents.device)
        for i, part in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            with nullcontext() if last else self.accelerator.no_sync(self.backbone):
                with self.accelerator.autocast():
                    part_loss = self.objective.loss(
                        self.backbone,
                        batch.select(part),
                        draws.shard(part),
                        modality=self.model.modality_id(name),
                        token_loss=self.model.token_loss(name),
                    ).loss / len(micro_batches)
                self.accelerator.backward(part_loss)
            loss = loss + part_loss.detach()
        global_loss = self.accelerator.reduce(loss, reduction="mean")
        if not torch.isfinite(global_loss):
            return self._skip_nonfinite(run, "loss")
        clip = self.config.train.grad_clip or math.inf
        grad_norm = self.accelerator.clip_grad_norm_(self.model.backbone.parameters(), clip)
        if not torch.isfinite(torch.as_tensor(grad_norm)):
            return self._skip_nonfinite(run, "gradient")
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        return float(global_loss), float(grad_norm), int(batch.latents.shape[0])

    def _micro_batches(self, global_batch: int) -> list[slice]:
        """This process's shard of the global batch, cut into the accumulation's K slices."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        K = self.config.train.gradient_accumulation_steps
        if global_batch % (world * K):
            raise TrainingError(
                f"batch_size {global_batch} must be divisible by the {world} processes x "
                f"{K} gradient accumulation steps"
            )
        size = global_batch // (world * K)
        start = rank * K * size
        return [slice(start + k * size, start + (k + 1) * size) for k in range(K)]

    def _skip_nonfinite(self, run: PhaseRun, what: str) -> None:
        run.optimizer.zero_grad(set_to_none=True)
        self.state.nonfinite += 1
        if self.state.nonfinite > self.config.train.max_nonfinite:
            raise TrainingError(
                f"stopping: {self.state.nonfinite} non-finite {what} values so far (limit "
                f"train.max_nonfinite={self.config.train.max_nonfinite}); the last complete "
                f"checkpoint in {self.out / 'checkpoints'} is untouched"
            )
        return None

    # -- validation (forgetting) ------------------------------------------------------------

    @torch.no_grad()
    def _validate_all(self, upto: int) -> None:
        """After phase ``upto``: the validation loss of every phase trained so far."""
        batches = self.config.train.validation_batches
        if batches == 0:
            return
        backbone = self.model.backbone
        was_training = backbone.training
        backbone.eval()
        for index, phase in enumerate(self.config.phases[: upto + 1]):
            loss = self._validation_loss(index, phase, batches)
            self.log.validation(
                after_phase=self.config.phases[upto].name,
                phase=phase.name,
                step=self.state.global_step,
                loss=loss,
            )
        backbone.train(was_training)

    def _validation_loss(self, index: int, phase: PhaseConfig, batches: int) -> float:
        data = self._phase_data(phase)
        loader = make_dataloader(
            data.validation,
            data.modality,
            min(phase.batch_size, len(data.validation)),
            seed=0,
            shuffle=False,
            drop_last=True,
        )
        generator = torch.Generator().manual_seed(self.config.seed + VALIDATION_SEED_OFFSET + index)
        adapter, losses = self.model.adapters[phase.name], []
        for raw, _ in zip(loader, range(batches), strict=False):  # at most `batches`
            batch = self.model.encode(phase.name, adapter.prepare_batch(raw))
            output = self.model.objective(  # unweighted, whatever train.min_snr_gamma says
                self.model.backbone,
                batch,
                generator=generator,
                modality=self.model.modality_id(phase.name),
            )
            losses.append(float(output.loss))
        return float(np.mean(losses)) if losses else float("nan")

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self, run: PhaseRun | None) -> None:
        check_finite_weights(self.model.backbone)
        if self.is_main:
            parts = {
                "backbone": self.model.backbone.state_dict(),
                "ema": self.ema.state_dict(),
                "rng": {**capture_rng_state(), "generator": self.generator.get_state()},
                "trainer": {
                    **asdict(self.state),
                    "config": self.config.to_dict(),
                    "layouts": {k: v.to_dict() for k, v in self.model.layouts.items()},
                    "modalities": list(self.model.adapters),
                },
            }
            if run is not None:  # mid-phase: what the phase needs to go on exactly
                parts["optimizer"] = run.optimizer.state_dict()
                parts["lr_scheduler"] = run.lr_scheduler.state_dict()
                parts["data"] = {
                    "train": run.loader.state_dict(),
                    "replay": run.replay_loader and run.replay_loader.state_dict(),
                }
            folders = {
                f"adapters/{name}": adapter.save_pretrained
                for name, adapter in self.model.adapters.items()
            }
            save_checkpoint(
                self.out / "checkpoints",
                self.state.global_step,
                parts,
                keep=self.config.train.keep_checkpoints,
                folders=folders,
            )
            self.log.flush()
        self.accelerator.wait_for_everyone()

    def _restore(self, folder: Path) -> dict | None:
        """Load a checkpoint; returns the parts the current phase needs when it starts."""
        restored = restore_model(folder, self.model, self.ema, expected_model=self.config.model)
        self.state = LoopState(**{k: restored.trainer[k] for k in asdict(LoopState())})
        set_qgfd_step(self.model.backbone, self.state.global_step)
        rng = load_part(folder, "rng")
        self.generator.set_state(rng.pop("generator"))
        restore_rng_state(rng)
        self.log.truncate(self.state.global_step, phases_done=self.state.phase_index)
        if self.state.phase_step == 0:
            return None
        return {name: load_part(folder, name) for name in ("optimizer", "lr_scheduler", "data")}

    def _restore_phase(self, run: PhaseRun, parts: dict) -> None:
        run.optimizer.load_state_dict(parts["optimizer"])
        run.lr_scheduler.load_state_dict(parts["lr_scheduler"])
        run.loader.load_state_dict(parts["data"]["train"])
        if run.replay_loader is not None:
            run.replay_loader.load_state_dict(parts["data"]["replay"])

    # -- samples --------------------------------------------------------------------------

    def _maybe_log_samples(self, phase: PhaseConfig) -> None:
        """Every ``train.sample_every`` steps: a few samples of the phase to the trackers
        (tracker_samples.py: the run's state is left exactly as it was)."""
        every = self.config.train.sample_every
        if not every or self.state.global_step % every or not (self.is_main and self.log.tracking):
            return
        log_tracker_samples(
            self.log,
            self.model,
            self.ema,
            self.config,
            phase,
            self.state.global_step,
            self.sample_graphs,
        )

    def sample_graphs(self, phase: PhaseConfig, count: int) -> torch.Tensor | None:
        """Held-out graphs to sample a graph-reading backbone on (None: it reads none, or the
        data has none and the layout gives them)."""
        if not self.model.cfg.uses_graph:
            return None
        return dataset_graphs(self._phase_data(phase).validation, count)


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
