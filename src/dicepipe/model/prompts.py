"""Task prompts through SD3's three text encoders, once, cached as safetensors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from dicepipe.tasks import SHARD_TASKS, TASK_PROMPTS

EMPTY_PROMPT_KEY = ""

DEFAULT_PROMPTS: dict[str, str] = {name: TASK_PROMPTS[name] for name in SHARD_TASKS}

Embedding = tuple[torch.Tensor, torch.Tensor]


@torch.no_grad()
def encode_prompts(
    pretrained_dir: str | Path,
    prompts: Mapping[str, str],
    *,
    max_sequence_length: int = 256,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, Embedding]:
    """Encode each task's prompt with the SD3 pipeline's CLIP-L, CLIP-G and T5 encoders.

    Returns ``{task: (tokens (L, D), pooled (P,))}`` plus ``EMPTY_PROMPT_KEY`` for ``""`` (the
    unconditional prompt). Only the text encoders and tokenizers are loaded.
    """
    from diffusers import StableDiffusion3Pipeline

    kwargs = {"torch_dtype": dtype} if dtype is not None else {}
    pipe = StableDiffusion3Pipeline.from_pretrained(
        str(pretrained_dir), transformer=None, vae=None, **kwargs
    ).to(device)
    out: dict[str, Embedding] = {}
    for name, text in {**prompts, EMPTY_PROMPT_KEY: ""}.items():
        tokens, _, pooled, _ = pipe.encode_prompt(
            prompt=text,
            prompt_2=text,
            prompt_3=text,
            device=torch.device(device),
            do_classifier_free_guidance=False,
            max_sequence_length=max_sequence_length,
        )
        out[name] = (tokens[0].float().cpu(), pooled[0].float().cpu())
    return out


def save_prompt_cache(
    path: str | Path, embeddings: Mapping[str, Embedding], prompts: Mapping[str, str] | None = None
) -> Path:
    """Write embeddings (with the empty prompt) to one safetensors file; names in metadata."""
    if EMPTY_PROMPT_KEY not in embeddings:
        raise KeyError("embeddings lack the empty prompt")
    names = [n for n in embeddings if n != EMPTY_PROMPT_KEY] + [EMPTY_PROMPT_KEY]
    tensors = {
        "tokens": torch.stack([embeddings[n][0] for n in names]).contiguous(),
        "pooled": torch.stack([embeddings[n][1] for n in names]).contiguous(),
    }
    metadata = {"names": json.dumps(names), "prompts": json.dumps(dict(prompts or {}))}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_prompt_cache(path: str | Path) -> dict[str, Embedding]:
    """Read a cache written by ``save_prompt_cache``: ``{task or "": (tokens, pooled)}``."""
    with safe_open(str(path), framework="pt") as f:
        names = json.loads(f.metadata()["names"])
        tokens, pooled = f.get_tensor("tokens"), f.get_tensor("pooled")
    return {n: (tokens[i], pooled[i]) for i, n in enumerate(names)}


def cache_task_prompts(
    pretrained_dir: str | Path,
    path: str | Path,
    prompts: Mapping[str, str] = DEFAULT_PROMPTS,
    **encode_kwargs: object,
) -> Path:
    """Encode ``prompts`` with the pretrained SD3 folder's text encoders and cache them."""
    embeddings = encode_prompts(pretrained_dir, prompts, **encode_kwargs)  # type: ignore[arg-type]
    return save_prompt_cache(path, embeddings, prompts)
