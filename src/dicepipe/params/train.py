"""`train` section: the generalist on the shards (see dicepipe.train.loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from dicepipe.config import bounded


@dataclass(frozen=True)
class TrainFlowParams:
    """Rectified-flow loss of the `train` stage (diffusers' SD3 training-script defaults)."""

    weighting_scheme: Literal["logit_normal", "mode", "cosmap", "sigma_sqrt", "none"] = (
        "logit_normal"
    )
    logit_mean: float = 0.0
    logit_std: float = bounded(1.0, lo=0.0)
    mode_scale: float = 1.29  # only for weighting_scheme "mode"
    shift: float = 3.0  # SD3-medium's scheduler shift
    prompt_dropout: float = bounded(0.1, lo=0.0, hi=1.0)  # empty prompt, for guidance
    point_dropout: float = bounded(0.1, lo=0.0, hi=1.0)  # all points "no point", for guidance
    # One-step deterministic mode (D3-Predictor, Lotus): t = 1, zero noise, the model regresses
    # the target; sample it with `one_step: true` (the timestep density is then unused).
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.logit_std <= 0 or self.shift <= 0:
            raise ValueError("flow.logit_std and flow.shift must be > 0")


@dataclass(frozen=True)
class ModelOverrides:
    """Changes to a from-scratch preset's size (null keeps the preset's value)."""

    num_layers: int | None = None
    num_attention_heads: int | None = None
    attention_head_dim: int | None = None
    patch_size: int | None = None
    joint_attention_dim: int | None = None
    caption_projection_dim: int | None = None
    pooled_projection_dim: int | None = None
    pos_embed_max_size: int | None = None
    task_token_length: int | None = None  # learned prompt tokens per task
    point_frequencies: int | None = None  # random Fourier features of a prompt point
    # How the input image reaches the transformer: sequence (DICEPTION: its own tokens) or
    # channels (Marigold/Lotus: a second patch embedding added to the noisy tokens).
    condition: Literal["sequence", "channels"] | None = None
    point_map: bool | None = None  # prompt points also drawn as blobs added to the image tokens

    def __post_init__(self) -> None:
        small = [
            name
            for name, value in vars(self).items()
            if isinstance(value, int) and not isinstance(value, bool) and value < 1
        ]
        if small:
            raise ValueError(f"model.{small[0]} must be >= 1 or null")

    def given(self) -> dict[str, Any]:
        """The overrides that are set."""
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class EmaParams:
    """Exponential moving average of the weights (diffusers.training_utils.EMAModel).

    When enabled the saved model folder holds the averaged weights (what evaluate and predict
    load); checkpoints keep the raw weights and the EMA state, so a resume is exact.
    """

    enabled: bool = False
    decay: float = bounded(0.9999, lo=0.0, hi=1.0)  # the ceiling of the decay
    min_decay: float = bounded(0.0, lo=0.0, hi=1.0)
    update_after_step: int = bounded(0, lo=0)  # optimizer steps before averaging starts
    use_ema_warmup: bool = False  # decay = 1 - (1 + step / inv_gamma) ** -power
    inv_gamma: float = bounded(1.0, lo=0.0)
    power: float = bounded(2 / 3, lo=0.0)


@dataclass(frozen=True)
class TaskLossWeights:
    """Per-task multipliers of the training loss (1: the plain mean over the batch)."""

    depth: float = bounded(1.0, lo=0.0)
    normal: float = bounded(1.0, lo=0.0)
    point_segmentation: float = bounded(1.0, lo=0.0)
    entity_segmentation: float = bounded(1.0, lo=0.0)
    semantic_segmentation: float = bounded(1.0, lo=0.0)
    pose: float = bounded(1.0, lo=0.0)


@dataclass(frozen=True)
class ForegroundWeights:
    """Per-task loss multiplier of a target's foreground pixels (any channel above black).

    For the tasks drawn on a black background; depth and normals cover every pixel.
    1 is the plain mean. Pose skeletons fill about 2% of their target, so at 1 a small
    model learns to draw black; 10 gives their pixels a say.
    """

    point_segmentation: float = bounded(1.0, lo=0.0)
    entity_segmentation: float = bounded(1.0, lo=0.0)
    semantic_segmentation: float = bounded(1.0, lo=0.0)
    pose: float = bounded(1.0, lo=0.0)


@dataclass(frozen=True)
class TrainParams:
    """`train` stage: the generalist on the shards, on accelerate (see dicepipe.train.loop).

    batch_size, resolution and num_workers override the `loader` section's when set.
    resume: null starts over (the output's checkpoints are removed), `latest` continues from
    the newest complete checkpoint made with the same params (apart from steps and the
    checkpoint/logging knobs), a path continues from that checkpoint.
    """

    SECTION: ClassVar[str] = "train"

    preset: Literal["tiny", "sd3-medium"] = "tiny"  # size of a from-scratch model
    model: ModelOverrides = field(default_factory=ModelOverrides)
    pretrained: str | None = None  # local SD3 folder (or cached hub id): latent space, its VAE
    resolution: int | None = bounded(None, lo=8)  # square side in pixels; null: loader.resolution
    batch_size: int | None = bounded(None, lo=1)  # per device; null: loader.batch_size
    num_workers: int | None = bounded(
        None, lo=0
    )  # DataLoader workers per rank; null: loader.num_workers
    threads: int | None = bounded(None, lo=1)  # torch CPU threads per rank; null: torch's default
    grad_accum: int = bounded(1, lo=1)
    steps: int = bounded(1000, lo=1)  # optimizer steps
    lr: float = 2e-5  # the peak rate, AdamW (paper: 2e-5, constant)
    # diffusers.optimization.get_scheduler: constant | constant_with_warmup | linear | cosine |
    # cosine_with_restarts | polynomial
    lr_scheduler: Literal[
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
    ] = "constant"
    lr_warmup_steps: int = bounded(0, lo=0)
    use_8bit_adam: bool = False  # bitsandbytes.optim.AdamW8bit (a clear error when missing)
    ema: EmaParams = field(default_factory=EmaParams)
    hflip_prob: float = bounded(0.0, lo=0.0, hi=1.0)  # random horizontal flips (train.augment)
    task_loss_weights: TaskLossWeights = field(default_factory=TaskLossWeights)
    foreground_weights: ForegroundWeights = field(default_factory=ForegroundWeights)
    preview_every: int = bounded(0, lo=0)  # steps between DVCLive preview grids; 0: none
    preview_rows: int = bounded(1, lo=1)  # held examples per task in a preview grid
    weight_decay: float = bounded(1e-4, lo=0.0)  # diffusers' SD3 training-script default
    max_grad_norm: float = bounded(1.0, lo=0.0)  # 0: no clipping
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA
    gradient_checkpointing: bool = False
    checkpoint_every: int = bounded(500, lo=1)  # steps; the last step is always saved too
    keep_checkpoints: int = bounded(3, lo=1)
    resume: str | None = None  # null | latest | a checkpoint folder
    # A shared folder or fsspec URL (s3://bucket/run) the checkpoints are mirrored to from
    # each machine's own disk; `resume: latest` then resumes from there (train.shared).
    checkpoint_url: str | None = None
    output: str = "runs/train"  # model/, checkpoints/, live/ (dvclive), loss.png
    metrics: str = "metrics/train.json"
    flow: TrainFlowParams = field(default_factory=TrainFlowParams)
    log_every: int = bounded(1, lo=1)  # steps between logged points
    trace: bool = False  # each rank writes the samples it consumed to <output>/trace/

    def __post_init__(self) -> None:
        checks = {
            "lr > 0": self.lr > 0,
            "resume is null, latest or a path": self.resume is None or self.resume.strip() != "",
            "sd3-medium needs pretrained (its VAE)": (
                self.preset != "sd3-medium" or self.pretrained is not None
            ),
            "model overrides only without pretrained": (
                self.pretrained is None or not self.model.given()
            ),
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid train params: {', '.join(failed)}")
