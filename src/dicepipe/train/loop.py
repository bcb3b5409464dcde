"""The training loop on HF accelerate: AdamW (or 8-bit AdamW) under a diffusers lr schedule,
optional weight EMA, accumulation, clipping, per-task loss weights, DDP, preview grids.

One process: `python stages/train.py`. Ranks on CPUs: `torchrun --nproc_per_node=N
stages/train.py` (gloo); on GPUs: `accelerate launch --multi_gpu stages/train.py`. Every rank
builds its own loader over its partition of the shards (the dataset partitions by rank, so
accelerate never wraps it) and moves batches to its device itself. Flow-matching randomness
comes from a generator seeded by (seed, rank, step), so a resumed run reproduces the losses of
an uninterrupted one. Logging and saving happen on the main process.

Outputs under `train.output`: `model/` (the final model, from_pretrained-loadable, with the
`inference.json` that `dicepipe.model.inference` reads),
`checkpoints/checkpoint-<step>/`, `live/` (DVCLive TSV histories and, every
`preview_every` steps, `plots/images/preview/step-<N>.png`), `loss.png`; and the summary JSON
at `train.metrics`. With `ema.enabled` the model folder holds the EMA weights; checkpoints
hold the raw weights, and the EMA and lr-schedule states (accelerate's registered objects).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dicepipe.model import (
    FlowConfig,
    count_parameters,
    flow_matching_loss,
    foreground_weight_map,
)
from dicepipe.model.card import write_model_card
from dicepipe.params.loader import LoaderParams
from dicepipe.params.train import TrainParams
from dicepipe.storage import write_json
from dicepipe.train import checkpoints, shared
from dicepipe.train.build import (
    build_model,
    flow_config,
    inference_info,
    loader_params,
    mixed_precision,
    prompt_cache_dir,
    run_digest,
    task_lookup,
)
from dicepipe.train.curves import CurveLogger, plot_losses, summarise
from dicepipe.train.distributed import Forward, Trace, noise_generator, state_checksum, step_losses
from dicepipe.train.loader import make_loader
from dicepipe.train.optim import averaged_weights, make_ema, make_optimizer, make_scheduler
from dicepipe.train.previews import PreviewSet


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes, below `train.output`."""

    root: Path

    @property
    def model(self) -> Path:
        """The final model folder (the DVC out)."""
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        """Checkpoint folders."""
        return self.root / "checkpoints"

    @property
    def live(self) -> Path:
        """DVCLive's folder."""
        return self.root / "live"

    @property
    def curves(self) -> Path:
        """The PNG of the loss curves."""
        return self.root / "loss.png"

    @property
    def trace(self) -> Path:
        """Per-rank traces of consumed samples (when `train.trace`)."""
        return self.root / "trace"


@dataclass
class Timing:
    """Time of a run so far: its training steps (checkpoints and logging excluded) and its
    wall time, carried over from the processes before a resume through `trainer.json`."""

    steps: int = 0
    seconds: float = 0.0
    wall_before: float = 0.0  # wall time of the earlier processes of this run
    started: float = field(default_factory=time.perf_counter)  # this process's start

    @classmethod
    def carried(cls, record: dict[str, Any], started: float) -> Timing:
        """The timing a checkpoint's `trainer.json` carries (zeros for older checkpoints)."""
        return cls(
            steps=int(record.get("timed_steps", 0)),
            seconds=float(record.get("step_seconds", 0.0)),
            wall_before=float(record.get("train_time_s", 0.0)),
            started=started,
        )

    def wall(self) -> float:
        """Wall time of the whole run up to now, earlier processes included."""
        return self.wall_before + time.perf_counter() - self.started

    def record(self) -> dict[str, Any]:
        """What `trainer.json` keeps of it, for `carried` after a resume."""
        return {
            "train_time_s": self.wall(),
            "step_seconds": self.seconds,
            "timed_steps": self.steps,
        }


@dataclass
class Run:
    """Everything the steps of one run share."""

    params: TrainParams
    accelerator: Any
    model: torch.nn.Module  # prepared: DDP-wrapped when there are several ranks
    optimizer: Any
    scheduler: Any  # diffusers lr schedule, stepped once per optimizer step
    ema: Any  # diffusers EMAModel of the trainable weights, or None
    task_weights: torch.Tensor  # loss multiplier per loader task id
    foreground_weights: torch.Tensor | None  # foreground-pixel multiplier per loader task id
    previews: PreviewSet | None  # held examples drawn every `preview_every` steps (main process)
    space: Any
    loader: torch.utils.data.DataLoader
    digest: str
    paths: RunPaths
    flow: FlowConfig
    lookup: torch.Tensor
    trace: Trace
    inference: dict[str, Any]  # inference.json beside every saved model
    timing: Timing = field(default_factory=Timing)
    forward: Forward = field(init=False)

    def __post_init__(self) -> None:
        self.forward = Forward(self.model, self.accelerator.unwrap_model(self.model))

    @property
    def dataset(self) -> Any:
        """This rank's TaskMixingDataset (its position is part of every checkpoint)."""
        return self.loader.dataset

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step over all ranks."""
        size = self.loader.batch_size * self.params.grad_accum
        return size * self.accelerator.num_processes


def train(params: TrainParams, loader: LoaderParams) -> dict[str, Any]:
    """Train per `params` on the shards of `loader`; the summary written to `params.metrics`
    (on the main process; other ranks return an empty dict)."""
    started = time.perf_counter()
    run = setup(params, loader)
    run.timing = Timing(started=started)
    start = restore(run)
    run_steps(run, start)
    return finish(run, start)


def make_accelerator(params: TrainParams) -> Any:
    """The Accelerator of a run: CPU (gloo ranks under torchrun) when there is no CUDA."""
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    return Accelerator(
        mixed_precision=mixed_precision(params.mixed_precision, cuda),
        gradient_accumulation_steps=params.grad_accum,
        cpu=not cuda,
    )


def setup(params: TrainParams, loader: LoaderParams) -> Run:
    """Accelerator, model, optimizer and this rank's loader."""
    accelerator = make_accelerator(params)
    if params.threads is not None:
        torch.set_num_threads(params.threads)
    paths = RunPaths(Path(params.output))
    with accelerator.main_process_first():  # the main process encodes the prompts once
        model, space = build_model(params, prompt_cache_dir())
    if params.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    if hasattr(space, "vae"):
        space.vae.to(accelerator.device)
    optimizer = make_optimizer(params, (p for p in model.parameters() if p.requires_grad))
    scheduler = make_scheduler(params, optimizer)
    ema = make_ema(params.ema, model)
    lookup = task_lookup(model)
    model, optimizer = accelerator.prepare(model, optimizer)
    # Registered, not prepared: accelerate would step a prepared schedule once per rank.
    accelerator.register_for_checkpointing(scheduler)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    effective = loader_params(params, loader)
    rank, world = accelerator.process_index, accelerator.num_processes
    previews = None
    if params.preview_every and accelerator.is_main_process:
        previews = PreviewSet.draw(effective, params.preview_rows, params.seed)
    return Run(
        params=params,
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        ema=ema,
        task_weights=task_loss_weights(params),
        foreground_weights=foreground_weights(params),
        previews=previews,
        space=space,
        loader=make_loader(effective, rank=rank, world_size=world, hflip_prob=params.hflip_prob),
        digest=run_digest(params, loader),
        paths=paths,
        flow=flow_config(params.flow),
        lookup=lookup,
        trace=Trace(paths.trace if params.trace else None, rank),
        inference=inference_info(params, loader),
    )


def per_task_id(section: Any) -> torch.Tensor:
    """A params section of per-task multipliers as a tensor indexed by loader task id (1 for
    the tasks the section does not list)."""
    from dicepipe.tasks import TASK_NAMES

    given = vars(section)
    return torch.tensor([float(given.get(name, 1.0)) for name in TASK_NAMES])


def task_loss_weights(params: TrainParams) -> torch.Tensor:
    """The loss multiplier of each loader task id (`train.task_loss_weights`; 1 otherwise)."""
    return per_task_id(params.task_loss_weights)


def foreground_weights(params: TrainParams) -> torch.Tensor | None:
    """The foreground-pixel multiplier of each loader task id (`train.foreground_weights`;
    1 for the tasks it does not list), or None when every one is 1 (no weight map to build)."""
    weights = per_task_id(params.foreground_weights)
    return None if bool((weights == 1.0).all()) else weights


def restore(run: Run) -> int:
    """Continue from the checkpoint `train.resume` selects, or start over; the start step."""
    accelerator = run.accelerator
    if run.params.checkpoint_url is not None:
        folder = shared.fetch_resume(run)
        if folder is None:
            shared.start_over(run)
            return 0
    else:
        folder = checkpoints.find_resume(run.paths.checkpoints, run.params.resume, run.digest)
        accelerator.wait_for_everyone()
        if folder is None:
            if accelerator.is_main_process:
                checkpoints.clear(run.paths.checkpoints)
            accelerator.wait_for_everyone()
            return 0
    step = checkpoints.load_checkpoint(run, folder)
    run.timing = Timing.carried(checkpoints.read_trainer(folder), run.timing.started)
    if accelerator.is_main_process:
        print(f"train: resuming from {folder} (step {step})")
    return step


def run_steps(run: Run, start: int) -> None:
    """Optimizer steps `start + 1 .. train.steps`, with logging and checkpoints."""
    from tqdm.auto import tqdm

    params, main = run.params, run.accelerator.is_main_process
    curves = CurveLogger(run.paths.live, start) if main else None
    timing = run.timing
    batches = iter(run.loader)
    bar = tqdm(total=params.steps, initial=start, desc="train", unit="step", disable=not main)
    for step in range(start + 1, params.steps + 1):
        tick = time.perf_counter()
        per_sample, task_ids = train_step(run, batches, step)
        seconds = time.perf_counter() - tick
        timing.steps, timing.seconds = timing.steps + 1, timing.seconds + seconds
        if step % params.log_every == 0 or step == params.steps:
            values = step_losses(run.accelerator, per_sample, task_ids)
            values["lr"] = run.optimizer.param_groups[0]["lr"]
            values["samples_per_s"] = run.global_batch / seconds
            if curves is not None:
                curves.log(step, values)
            bar.set_postfix(loss=f"{values['loss']:.4f}")
        bar.update()
        if run.previews is not None and step % params.preview_every == 0:
            with averaged_weights(run.ema, run.accelerator.unwrap_model(run.model)) as model:
                run.previews.log(model, run.space, run.paths.live, step, params.flow)
        if step % params.checkpoint_every == 0 or step == params.steps:
            folder = checkpoints.save_checkpoint(run, step)
            if params.checkpoint_url is not None:
                shared.mirror(run, step, folder)
    bar.close()


def train_step(run: Run, batches: Any, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of `train.grad_accum` micro-batches: (per-sample losses, task ids)."""
    losses, tasks = [], []
    for micro in range(run.params.grad_accum):
        batch = next_batch(run, batches)
        run.dataset.record(batch)
        run.trace.batch(step, micro, batch)
        with run.accelerator.accumulate(run.model):
            losses.append(micro_step(run, batch, step, micro))
        tasks.append(batch["task_id"])
    run.scheduler.step()
    if run.ema is not None:
        run.ema.step([p for p in run.model.parameters() if p.requires_grad])
    return torch.cat(losses), torch.cat(tasks)


def next_batch(run: Run, batches: Any) -> dict[str, Any]:
    """The next batch of this rank's endless stream."""
    try:
        return next(batches)
    except StopIteration:
        raise RuntimeError(
            f"rank {run.accelerator.process_index} has no rows of a weighted task: the shards "
            "have fewer rows than ranks x loader workers, or all task weights are 0"
        ) from None


def micro_step(run: Run, batch: dict[str, Any], step: int, micro: int) -> torch.Tensor:
    """Loss, backward and (on the last micro-batch) a clipped optimizer step; the per-sample
    losses, detached."""
    accelerator, params = run.accelerator, run.params
    generator = noise_generator(params.seed, accelerator.process_index, step, micro)
    _, per_sample = flow_matching_loss(
        run.forward, run.space, model_batch(run, batch), generator=generator, config=run.flow
    )
    weights = run.task_weights[batch["task_id"]].to(per_sample.device)
    accelerator.backward((per_sample * weights).mean())
    if accelerator.sync_gradients and params.max_grad_norm > 0:
        accelerator.clip_grad_norm_(run.model.parameters(), params.max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    return per_sample.detach()


def model_batch(run: Run, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors the loss needs, on this rank's device; task ids as the model's rows."""
    device = run.accelerator.device
    tensors = {
        name: batch[name].to(device, non_blocking=True)
        for name in ("image", "target", "points", "point_mask")
    }
    tensors["task_id"] = run.lookup[batch["task_id"]].to(device)
    if run.foreground_weights is not None:
        weights = run.foreground_weights[batch["task_id"]]
        tensors["pixel_weight"] = foreground_weight_map(tensors["target"], weights)
    return tensors


def finish(run: Run, start: int) -> dict[str, Any]:
    """Save the final model, curves and summary (main process); every rank's checksum to its
    trace. The summary, or an empty dict on other ranks."""
    accelerator = run.accelerator
    accelerator.wait_for_everyone()
    bare = accelerator.unwrap_model(run.model)
    run.trace.write({"final": True, "step": run.params.steps, "checksum": state_checksum(bare)})
    summary: dict[str, Any] = {}
    if accelerator.is_main_process:
        with averaged_weights(run.ema, bare) as model:
            save_model(model, run.paths.model, run.inference)
        plot_losses(run.paths.live, run.paths.curves)
        summary = summarise(run.paths.live, run_figures(run, start))
        write_json(run.params.metrics, summary)
        write_model_card(run.paths.model, run.params, run.inference, summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def save_model(model: Any, folder: Path, inference: dict[str, Any]) -> None:
    """The model folder (with `inference.json`) written aside, then renamed over `folder`."""
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    checkpoints.save_model_folder(model, tmp, inference)
    checkpoints.publish(tmp, folder)


def run_figures(run: Run, start: int) -> dict[str, Any]:
    """Size and speed of the run, the processes before a resume included."""
    bare = run.accelerator.unwrap_model(run.model)
    timing = run.timing
    seconds = max(timing.seconds, 1e-9)
    return {
        "steps": run.params.steps,
        "resumed_from": start,
        "world_size": run.accelerator.num_processes,
        "device": str(run.accelerator.device),
        "mixed_precision": str(run.accelerator.mixed_precision),
        "global_batch": run.global_batch,
        "parameters": count_parameters(bare),
        "trainable_parameters": count_parameters(bare, trainable_only=True),
        # None when no step was timed (a checkpoint of an older version, resumed at its end)
        "step_time_s": seconds / timing.steps if timing.steps else None,
        "samples_per_s": run.global_batch * timing.steps / seconds if timing.steps else None,
        "train_time_s": timing.wall(),
    }
