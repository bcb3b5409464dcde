"""DICEPTION: SD3's MMDiT over [noisy target | input image] tokens, task and point context.

Two ways to show the model its input image (``condition``): ``sequence`` (DICEPTION) appends
the image's patch tokens to the noisy target's, so every output patch must find its input
patch by attention; ``channels`` (Marigold, Lotus) adds a second patch embedding of the image
to the noisy tokens, so each output patch holds its own input patch from the first block on,
at half the sequence length. From scratch on a CPU budget the second learns far faster.

``point_map`` (off for DICEPTION) also draws the prompt points as Gaussian blobs into a map
that a patch embedding adds to the noisy tokens, as SAM adds its dense prompt embedding: a
small model then knows at every patch how far the nearest point is, instead of having to
learn to find the point tokens' positions by attention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, SD3Transformer2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import PatchEmbed
from torch.utils.checkpoint import checkpoint

from .points import MAX_POINTS, PointEncoder
from .presets import count_parameters, preset
from .prompts import EMPTY_PROMPT_KEY, Embedding, load_prompt_cache
from .tasks import DEFAULT_TASKS, TaskTable

CONDITION_MODES = ("sequence", "channels")


class DiceptionModel(ModelMixin, ConfigMixin):
    """One SD3 transformer (blocks unchanged) predicting the velocity of the noisy target.

    ``save_pretrained``/``from_pretrained`` store the transformer config, task names, task
    table and point encoder in one ``config.json`` + safetensors.
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        transformer_config: dict[str, Any] | None = None,
        tasks: Sequence[str] = DEFAULT_TASKS,
        space: str = "pixel",
        task_token_length: int = 8,
        point_frequencies: int = 64,
        point_seed: int = 0,
        frozen_task_table: bool = False,
        condition: str = "sequence",
        point_map: bool = False,
    ) -> None:
        super().__init__()
        if condition not in CONDITION_MODES:
            raise ValueError(f"condition must be one of {CONDITION_MODES}, not {condition!r}")
        if transformer_config is None:
            transformer_config = preset("tiny")["transformer_config"]
        self.transformer = SD3Transformer2DModel(**transformer_config)
        inner = self.transformer.config
        self.condition_embed = None
        if condition == "channels":
            self.condition_embed = condition_embedding(self.transformer)
        self.point_map_embed = condition_embedding(self.transformer, 1) if point_map else None
        self.points = PointEncoder(
            inner.joint_attention_dim, num_frequencies=point_frequencies, seed=point_seed
        )
        self.task_table = TaskTable(
            list(tasks),
            task_token_length,
            inner.joint_attention_dim,
            inner.pooled_projection_dim,
            frozen=frozen_task_table,
        )
        self.gradient_checkpointing = False

    @classmethod
    def from_preset(
        cls, name: str, tasks: Sequence[str] = DEFAULT_TASKS, **kwargs: Any
    ) -> DiceptionModel:
        """Build a randomly initialised model of a size preset (``tiny``, ``sd3-medium``)."""
        return cls(**preset(name), tasks=list(tasks), **kwargs)

    @classmethod
    def from_transformer(
        cls,
        transformer: SD3Transformer2DModel | str | Path,
        tasks: Sequence[str] = DEFAULT_TASKS,
        **kwargs: Any,
    ) -> DiceptionModel:
        """Wrap a pretrained SD3 transformer (module, its folder, or an SD3 pipeline folder).

        The point encoder and task table start fresh; the transformer is used as is (no copy).
        """
        if not isinstance(transformer, SD3Transformer2DModel):
            folder = Path(transformer)
            sub = "transformer" if (folder / "transformer" / "config.json").exists() else None
            transformer = SD3Transformer2DModel.from_pretrained(str(folder), subfolder=sub)
        config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
        kwargs.setdefault("space", "pixel" if config["in_channels"] == 3 else "latent")
        # Built on meta so the 2B random transformer is never allocated, then swapped out.
        with torch.device("meta"):
            model = cls(transformer_config=config, tasks=list(tasks), **kwargs)
        model.transformer = transformer
        for module in (model.points, model.task_table):
            module.to_empty(device=transformer.device)
            module.reset_parameters()
            module.to(transformer.dtype)
        if model.condition_embed is not None:  # starts as the transformer's own patch embedding
            model.condition_embed = condition_embedding(transformer)
            model.condition_embed.proj.load_state_dict(transformer.pos_embed.proj.state_dict())
        if model.point_map_embed is not None:
            model.point_map_embed = condition_embedding(transformer, 1)
        return model

    @property
    def tasks(self) -> list[str]:
        """Task names, in task-id order."""
        return list(self.task_table.names)

    @property
    def empty_task_id(self) -> int:
        """Task id of the empty prompt (unconditional branch)."""
        return self.task_table.empty_id

    def task_id(self, name: str) -> int:
        """Task id of a task name."""
        return self.task_table.index(name)

    def add_task(
        self,
        name: str,
        tokens: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None,
        *,
        init_from: str | None = None,
        trainable: bool | None = None,
    ) -> int:
        """Append a task row (trainable unless embeddings are given, or as `trainable` says);
        returns its id."""
        task = self.task_table.add(name, tokens, pooled, init_from=init_from, trainable=trainable)
        self.register_to_config(tasks=self.tasks)
        return task

    def load_task_embeddings(self, embeddings: Mapping[str, Embedding] | str | Path) -> None:
        """Fill the task table from text-encoder embeddings (or a prompt cache file); frozen."""
        if not isinstance(embeddings, Mapping):
            embeddings = load_prompt_cache(embeddings)
        rows = {n: e for n, e in embeddings.items() if n != EMPTY_PROMPT_KEY}
        self.task_table.set_rows(rows, embeddings[EMPTY_PROMPT_KEY])
        length = int(embeddings[EMPTY_PROMPT_KEY][0].shape[0])
        self.register_to_config(task_token_length=length, frozen_task_table=True)

    def context_tokens(
        self,
        task_ids: torch.Tensor,
        points: torch.Tensor,
        point_mask: torch.Tensor,
        *,
        drop_prompt: torch.Tensor | None = None,
        drop_points: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context before ``context_embedder``: (task tokens ++ 5 point tokens, pooled)."""
        if points.shape[1] != MAX_POINTS:
            raise ValueError(f"expected {MAX_POINTS} point slots, got {points.shape[1]}")
        device = self.points.point_embed.device
        drop = drop_prompt.to(device) if drop_prompt is not None else None
        tokens, pooled = self.task_table(task_ids.to(device), drop)
        point_mask = point_mask.to(device).bool()
        if drop_points is not None:
            point_mask = point_mask & ~drop_points.to(device).bool()[:, None]
        point_tokens = self.points(points.to(device), point_mask)
        return torch.cat([tokens.to(point_tokens.dtype), point_tokens], dim=1), pooled

    def _block(self, block: torch.nn.Module, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            func = getattr(self, "_gradient_checkpointing_func", None)
            if func is not None:
                return func(block, *args)
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(
        self,
        noisy: torch.Tensor,
        condition: torch.Tensor,
        timestep: torch.Tensor | float,
        task_ids: torch.Tensor,
        points: torch.Tensor,
        point_mask: torch.Tensor,
        drop_prompt: torch.Tensor | None = None,
        drop_points: torch.Tensor | None = None,
        joint_attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Velocity for the noisy tokens only, shaped like ``noisy`` (B, C, H, W).

        ``timestep`` (B,) or scalar, in scheduler units ([0, 1000]); ``drop_prompt`` (B,) selects
        the empty prompt row, ``drop_points`` (B,) turns all point tokens into "no point".
        """
        tr = self.transformer
        batch, _, height, width = noisy.shape
        noisy_tokens = tr.pos_embed(noisy)
        num_noisy = noisy_tokens.shape[1]
        if self.condition_embed is None:
            hidden = torch.cat([noisy_tokens, tr.pos_embed(condition)], dim=1).contiguous()
        else:
            hidden = noisy_tokens + self.condition_embed(condition.to(noisy_tokens.dtype))
        if self.point_map_embed is not None:
            shown = point_mask.to(noisy.device).bool()
            if drop_points is not None:
                shown = shown & ~drop_points.to(noisy.device).bool()[:, None]
            blobs = point_blobs(points.to(noisy.device), shown, height, width)
            extra = self.point_map_embed(blobs.to(noisy_tokens.dtype))
            hidden = torch.cat([hidden[:, :num_noisy] + extra, hidden[:, num_noisy:]], dim=1)

        context, pooled = self.context_tokens(
            task_ids, points, point_mask, drop_prompt=drop_prompt, drop_points=drop_points
        )

        timestep = torch.as_tensor(timestep, device=noisy.device).reshape(-1)
        timestep = timestep.expand(batch) if timestep.numel() == 1 else timestep
        temb = tr.time_text_embed(timestep, pooled.to(hidden.dtype))
        context = tr.context_embedder(context)
        for block in tr.transformer_blocks:
            context, hidden = self._block(block, hidden, context, temb, joint_attention_kwargs)

        hidden = tr.proj_out(tr.norm_out(hidden[:, :num_noisy], temb))
        patch = tr.config.patch_size
        rows, cols = height // patch, width // patch
        hidden = hidden.reshape(batch, rows, cols, patch, patch, tr.out_channels)
        hidden = torch.einsum("nhwpqc->nchpwq", hidden)
        return hidden.reshape(batch, tr.out_channels, rows * patch, cols * patch)


def point_blobs(
    points: torch.Tensor, point_mask: torch.Tensor, height: int, width: int, sigma: float = 0.04
) -> torch.Tensor:
    """(B, 1, H, W) map of the shown points: the largest exp(-d^2 / 2 sigma^2) over them, with
    d the distance in units of the image side; zeros where no point is shown."""
    ys = (torch.arange(height, device=points.device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=points.device, dtype=torch.float32) + 0.5) / width
    dx = xs[None, None, None, :] - points[..., 0].float()[:, :, None, None]
    dy = ys[None, None, :, None] - points[..., 1].float()[:, :, None, None]
    blobs = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)) * point_mask[:, :, None, None].float()
    return blobs.amax(dim=1, keepdim=True)


def condition_embedding(
    transformer: SD3Transformer2DModel, channels: int | None = None
) -> PatchEmbed:
    """A patch embedding of `channels` (default: the transformer's input channels) like the
    transformer's, without positions (the noisy tokens it is added to carry them)."""
    config = transformer.config
    return PatchEmbed(
        height=config.sample_size,
        width=config.sample_size,
        patch_size=config.patch_size,
        in_channels=channels or config.in_channels,
        embed_dim=transformer.inner_dim,
        pos_embed_type=None,
    ).to(device=transformer.device, dtype=transformer.dtype)


def preset_parameters(name: str, tasks: Sequence[str] = DEFAULT_TASKS) -> int:
    """Parameters of a whole DiceptionModel preset, built on the meta device."""
    with torch.device("meta"):
        model = DiceptionModel.from_preset(name, tasks)
    return count_parameters(model)
