"""`dicepipe merge`: a base model folder plus a LoRA adapter -> one plain model folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from dicepipe.storage import sha256_file, write_json

from .folder import CARD_FILE, INFERENCE_FILE, PROMPTS_FILE, ModelFolderError, load_model_folder
from .lora import LORA_WEIGHTS, load_lora, merge_lora


def merge_folder(base: str | Path, lora: str | Path, out: str | Path) -> Path:
    """Write `out`: the base model with the adapter folded into its weights and the adapter's
    task row in its task table, beside the base's VAE, prompts and resolution; it predicts as
    base + adapter does. Written aside and renamed into place; `out` must not exist."""
    out = Path(out)
    if out.exists():
        raise ModelFolderError(f"--out {out} already exists; give a new folder")
    loaded = load_model_folder(base, device="cpu")
    task = load_lora(loaded.model, lora)
    merge_lora(loaded.model)
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    loaded.model.save_pretrained(str(tmp))
    source = loaded.checked
    if source.vae is not None:
        shutil.copytree(source.vae, tmp / source.vae.name)
    if source.prompts is not None:
        shutil.copyfile(source.prompts, tmp / PROMPTS_FILE)
    merged = {
        "lora_sha256": sha256_file(Path(lora) / LORA_WEIGHTS),
        "task": None if task is None else loaded.model.tasks[task],
    }
    write_json(tmp / INFERENCE_FILE, {**source.info, "merged": merged})
    if (source.path / CARD_FILE).is_file():
        card = (source.path / CARD_FILE).read_text()
        note = f"\n## Merged LoRA adapter\n\n- task: {merged['task']}\n"
        (tmp / CARD_FILE).write_text(card + note + f"- adapter sha256: `{merged['lora_sha256']}`\n")
    tmp.rename(out)
    return out
