"""Task prompts through tiny random SD3 text encoders, cached and loaded into the table."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import torch

from dicepipe.model import (
    DiceptionModel,
    cache_task_prompts,
    load_prompt_cache,
    save_prompt_cache,
)

from .conftest import TASKS, TEST_TRANSFORMER, make_model

PROMPTS = {"depth": "image2depth", "normal": "image2normal", "point_segmentation": "image2seg"}


def _embeddings(length: int = 6) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    names = [*TASKS, ""]
    return {n: (torch.randn(length, 32, generator=g), torch.randn(16, generator=g)) for n in names}


def test_cache_round_trip(tmp_path: Path) -> None:
    embeddings = _embeddings()
    path = save_prompt_cache(tmp_path / "prompts.safetensors", embeddings, PROMPTS)
    loaded = load_prompt_cache(path)
    assert list(loaded) == list(embeddings)
    for name, (tokens, pooled) in embeddings.items():
        torch.testing.assert_close(loaded[name][0], tokens)
        torch.testing.assert_close(loaded[name][1], pooled)


def test_cache_into_model_is_frozen_and_saved(tmp_path: Path) -> None:
    model = make_model()
    path = save_prompt_cache(tmp_path / "prompts.safetensors", _embeddings(length=6))
    model.load_task_embeddings(path)
    assert model.config.task_token_length == 6 and model.config.frozen_task_table
    assert not any(p.requires_grad for p in model.task_table.parameters())
    torch.testing.assert_close(model.task_table.all_tokens()[-1], _embeddings(6)[""][0])
    model.save_pretrained(tmp_path / "model")
    loaded = DiceptionModel.from_pretrained(tmp_path / "model")
    torch.testing.assert_close(loaded.task_table.all_tokens(), model.task_table.all_tokens())
    assert not any(p.requires_grad for p in loaded.task_table.parameters())


def _tiny_sd3_text_folder(folder: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    torch.manual_seed(0)
    chars = string.ascii_lowercase + string.digits
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    clip_tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    t5_tokenizer = transformers.T5TokenizerFast(
        vocab=pieces + [(c, -1.0) for c in chars], extra_ids=0
    )

    def clip() -> torch.nn.Module:
        config = transformers.CLIPTextConfig(
            hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
            projection_dim=8, vocab_size=len(vocab), bos_token_id=0, eos_token_id=1,
            pad_token_id=1,
        )  # fmt: skip
        return transformers.CLIPTextModelWithProjection(config)

    t5_config = transformers.T5Config(
        d_model=32, d_ff=16, num_layers=1, num_heads=2, d_kv=8, vocab_size=len(t5_tokenizer)
    )
    pipe = StableDiffusion3Pipeline(
        transformer=None,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=None,
        text_encoder=clip(),
        tokenizer=clip_tokenizer,
        text_encoder_2=clip(),
        tokenizer_2=clip_tokenizer,
        text_encoder_3=transformers.T5EncoderModel(t5_config),
        tokenizer_3=t5_tokenizer,
    )
    pipe.save_pretrained(folder)


def test_text_encoders_to_model(tmp_path: Path) -> None:
    _tiny_sd3_text_folder(tmp_path / "sd3")
    path = cache_task_prompts(
        tmp_path / "sd3", tmp_path / "prompts.safetensors", PROMPTS, max_sequence_length=8
    )
    cache = load_prompt_cache(path)
    # 77 CLIP tokens (CLIP-L ++ CLIP-G, zero-padded to T5 width) ++ 8 T5 tokens; pooled 8 + 8.
    assert cache["depth"][0].shape == (85, 32) and cache["depth"][1].shape == (16,)
    assert not torch.allclose(cache["depth"][0], cache["normal"][0])
    assert not torch.allclose(cache["depth"][0], cache[""][0])
    assert TEST_TRANSFORMER["joint_attention_dim"] == 32
    model = make_model()
    model.load_task_embeddings(path)
    assert model.task_table.all_tokens().shape == (4, 85, 32)
