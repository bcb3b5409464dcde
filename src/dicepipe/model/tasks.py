"""Task conditioning: one (tokens, pooled) row per task plus a final empty-prompt row."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dicepipe.tasks import SHARD_TASKS

# The shard tasks in registry order, so a loader's `task_id` is the model's task row.
DEFAULT_TASKS: tuple[str, ...] = SHARD_TASKS


def _row(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class TaskTable(nn.Module):
    """Learned (or text-encoder cached, then frozen) prompt embeddings, one row per task.

    Row ``i < len(names)`` is task ``names[i]``; row ``len(names)`` (``empty_id``) is the empty
    prompt used for the unconditional branch of classifier-free guidance.
    """

    def __init__(
        self,
        names: Sequence[str],
        num_tokens: int,
        dim: int,
        pooled_dim: int,
        *,
        frozen: bool = False,
    ) -> None:
        super().__init__()
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names: {list(names)}")
        self.names = list(names)
        # One parameter per row, so a row added later (few-shot) can train while the rest is frozen.
        self.tokens = nn.ParameterList([_row(num_tokens, dim) for _ in self.names])
        self.pooled = nn.ParameterList([_row(pooled_dim) for _ in self.names])
        self.empty_tokens = _row(num_tokens, dim)
        self.empty_pooled = _row(pooled_dim)
        if frozen:
            self.requires_grad_(False)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise every row in place (after ``to_empty``)."""
        for row in self.parameters():
            nn.init.normal_(row, std=0.02)

    @property
    def empty_id(self) -> int:
        """Index of the empty-prompt row (after all task rows)."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Row index of a task name."""
        return self.names.index(name)

    def all_tokens(self) -> torch.Tensor:
        """All rows as (T + 1, L, D), empty prompt last."""
        return torch.stack([*self.tokens, self.empty_tokens])

    def all_pooled(self) -> torch.Tensor:
        """All pooled rows as (T + 1, P), empty prompt last."""
        return torch.stack([*self.pooled, self.empty_pooled])

    def forward(
        self, task_ids: torch.Tensor, drop: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Task ids (B,) -> tokens (B, L, D), pooled (B, P); ``drop`` (B,) picks the empty row."""
        ids = task_ids.long()
        if drop is not None:
            ids = torch.where(drop.bool(), torch.full_like(ids, self.empty_id), ids)
        return self.all_tokens()[ids], self.all_pooled()[ids]

    def add(
        self,
        name: str,
        tokens: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None,
        *,
        init_from: str | None = None,
        trainable: bool | None = None,
    ) -> int:
        """Append a task row and return its id; the empty-prompt row moves to the end.

        Given ``tokens``/``pooled`` (e.g. from the text encoders) the row starts as them and is
        frozen; otherwise it starts as a copy of ``init_from`` (default: the empty prompt) and
        is trainable. ``trainable`` overrides either default.
        """
        if name in self.names:
            raise ValueError(f"task {name!r} already exists")
        source = self.index(init_from) if init_from is not None else self.empty_id
        reference = self.empty_tokens
        if tokens is None:
            new_tokens = self.all_tokens()[source].detach().clone()
            new_pooled = self.all_pooled()[source].detach().clone()
        else:
            if pooled is None:
                raise ValueError("tokens given without pooled")
            new_tokens, new_pooled = tokens.detach().clone(), pooled.detach().clone()
        if new_tokens.shape != reference.shape:
            raise ValueError(f"task tokens {tuple(new_tokens.shape)} != {tuple(reference.shape)}")
        kw = {"device": reference.device, "dtype": reference.dtype}
        trainable = tokens is None if trainable is None else trainable
        self.tokens.append(nn.Parameter(new_tokens.to(**kw), requires_grad=trainable))
        self.pooled.append(nn.Parameter(new_pooled.to(**kw), requires_grad=trainable))
        self.names.append(name)
        return len(self.names) - 1

    def set_rows(
        self, rows: dict[str, tuple[torch.Tensor, torch.Tensor]], empty: tuple[torch.Tensor, ...]
    ) -> None:
        """Replace every row by given (tokens, pooled) values and freeze the table.

        Token length may differ from the current one (text encoders give 77 + T5 length).
        """
        missing = [n for n in self.names if n not in rows]
        if missing:
            raise KeyError(f"no embedding for tasks {missing}")
        kw = {"device": self.empty_tokens.device, "dtype": self.empty_tokens.dtype}

        def frozen(t: torch.Tensor) -> nn.Parameter:
            return nn.Parameter(t.detach().to(**kw).clone(), requires_grad=False)

        self.tokens = nn.ParameterList([frozen(rows[n][0]) for n in self.names])
        self.pooled = nn.ParameterList([frozen(rows[n][1]) for n in self.names])
        self.empty_tokens = frozen(empty[0])
        self.empty_pooled = frozen(empty[1])
