"""Where teacher weights come from, what they are (a digest), and which device/dtype runs them.

Weights are a local folder or a Hugging Face hub id looked up only in the local HF cache;
nothing downloads unless the caller passes `allow_download=True` (params: `label.allow_download`).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from dicepipe.errors import UserError

if TYPE_CHECKING:
    import torch

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DTYPES = ("auto", "float32", "bfloat16", "float16")


class MissingWeightsError(UserError, FileNotFoundError):
    """A teacher checkpoint that is not on this machine; the message says where to put it."""


def resolve_weights(
    spec: str | Path,
    *,
    allow_download: bool = False,
    cache_dir: str | Path | None = None,
    param: str = "label.weights",
) -> Path:
    """The local folder holding the checkpoint `spec` (a folder path or a hub id like `org/name`).

    A hub id is looked up only in the local HF cache (`cache_dir`, default: the HF_HOME cache)
    unless `allow_download`; a missing checkpoint raises MissingWeightsError naming the folder
    to fill, the download command and the param (`param`) to set.
    """
    text = str(spec).strip()
    if not text:
        raise ValueError(f"{param} is empty: give a local folder or a hub id such as org/name")
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{param}={text!r} is a file; it must be the checkpoint's folder")
    if not _looks_like_hub_id(text):
        raise MissingWeightsError(_missing_folder_message(text, param))
    return _from_hub_cache(text, allow_download, cache_dir, param)


def _looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and not text.startswith((".", "~"))


def _from_hub_cache(
    repo_id: str, allow_download: bool, cache_dir: str | Path | None, param: str
) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True))
    except LocalEntryNotFoundError:
        if not allow_download:
            raise MissingWeightsError(_missing_hub_message(repo_id, cache_dir, param)) from None
    return Path(snapshot_download(repo_id, cache_dir=cache_dir))


def _missing_folder_message(folder: str, param: str) -> str:
    return (
        f"no teacher weights at {folder!r} ({param}). Put the checkpoint folder there "
        f"(config + *.safetensors), e.g. `hf download <org>/<name> --local-dir {folder}`, "
        f"or set {param} to a folder that holds it or to a hub id in the local HF cache."
    )


def _missing_hub_message(repo_id: str, cache_dir: str | Path | None, param: str) -> str:
    from huggingface_hub import constants

    cache = cache_dir or constants.HF_HUB_CACHE
    folder = f"weights/{repo_id.split('/')[-1]}"
    return (
        f"teacher weights {repo_id!r} ({param}) are not in the local Hugging Face cache "
        f"({cache}) and downloads are off. Either run `hf download {repo_id}` "
        f"(fills the cache), or `hf download {repo_id} --local-dir {folder}` and set "
        f"{param}: {folder}, or set label.allow_download: true to let the run download it."
    )


def weights_digest(folder: str | Path, length: int = 12) -> str:
    """Short sha256 over every *.safetensors file below `folder` (relative names + bytes)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*.safetensors") if p.is_file())
    if not files:
        raise MissingWeightsError(
            f"no *.safetensors files under {root}; only safetensors weights are loaded"
        )
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(_file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:length]


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so a replaced file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` -> the first CUDA device when there is one, else the CPU; otherwise as given."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto` -> bfloat16 on CUDA (float16 where bf16 is unsupported), float32 on the CPU."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.bfloat16` -> `bf16`, `torch.float16` -> `fp16`, `torch.float32` -> `fp32`."""
    return {"torch.bfloat16": "bf16", "torch.float16": "fp16", "torch.float32": "fp32"}[str(dtype)]
