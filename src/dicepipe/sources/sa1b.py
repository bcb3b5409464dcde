"""SA-1B: `sa_NNNNNN.tar` files of `sa_<id>.jpg` + `sa_<id>.json`, streamed member by member."""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterator
from typing import Any

import fsspec

from dicepipe.params import Sa1bParams
from dicepipe.sampling import bottom_k_items
from dicepipe.sources.common import ItemError, Unit, expand_paths, sample_row

SOURCE = "sa1b"


def unsafe_member_reason(name: str) -> str | None:
    """Why a tar member name is unsafe to trust (absolute path, `..`), or None."""
    if name.startswith("/") or posixpath.isabs(name):
        return "absolute path"
    if ".." in name.split("/"):
        return "parent-directory component"
    return None


def list_stems(tar_url: str) -> list[str]:
    """The `sa_<id>` stems of a tar's regular members, read from headers only (seeking)."""
    with fsspec.open(tar_url, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as archive:
        names = [m.name for m in archive.getmembers() if m.isfile()]
    return sorted({posixpath.splitext(posixpath.basename(n))[0] for n in names})


def plan_units(params: Sa1bParams, seed: int) -> list[Unit]:
    """Select `params.n` images over all tars by seeded hash; one unit per tar with a pick."""
    tars = expand_paths(params.tars)
    if params.n == 0 or not tars:
        return []
    candidates = ((f"{SOURCE}/{stem}", (tar, stem)) for tar in tars for stem in list_stems(tar))
    picked = bottom_k_items(candidates, params.n, seed)
    per_tar: dict[str, list[str]] = {}
    for _, (tar, stem) in picked:
        per_tar.setdefault(tar, []).append(stem)
    return [
        Unit(SOURCE, f"{SOURCE}-{_tar_stem(tar)}", tar, tuple((s, {}) for s in sorted(stems)))
        for tar, stems in sorted(per_tar.items())
    ]


def _tar_stem(tar_url: str) -> str:
    return posixpath.splitext(posixpath.basename(tar_url))[0]


def iter_pairs(
    tar_url: str, wanted: set[str]
) -> Iterator[tuple[str, dict[str, bytes], str | None]]:
    """Stream a tar once, yielding (stem, {".jpg": bytes, ".json": bytes}, problem) for wanted
    stems; `problem` names an unsafe member or a missing half of the pair."""
    pending: dict[str, dict[str, bytes]] = {}
    with fsspec.open(tar_url, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
        for member in archive:
            stem, ext = posixpath.splitext(posixpath.basename(member.name))
            if stem not in wanted or not member.isfile():
                continue
            reason = unsafe_member_reason(member.name)
            if reason is not None:
                pending.pop(stem, None)
                wanted = wanted - {stem}
                yield stem, {}, f"unsafe tar member {member.name!r}: {reason}"
                continue
            handle = archive.extractfile(member)
            parts = pending.setdefault(stem, {})
            parts[ext] = handle.read() if handle is not None else b""
            if {".jpg", ".json"} <= parts.keys():
                yield stem, pending.pop(stem), None
    for stem, parts in sorted(pending.items()):
        missing = ".json" if ".jpg" in parts else ".jpg"
        yield stem, parts, f"no {stem}{missing} in the tar"


def parse_annotations(data: bytes, width: int, height: int) -> list[dict[str, Any]]:
    """Parse an SA-1B JSON and check every mask's RLE size against the decoded image."""
    try:
        record = json.loads(data)
        annotations = record["annotations"]
    except (ValueError, KeyError, TypeError) as error:
        raise ItemError("bad_json", f"annotation JSON unreadable: {error}") from None
    for annotation in annotations:
        size = annotation.get("segmentation", {}).get("size")
        if size != [height, width]:
            raise ItemError(
                "rle_size_mismatch",
                f"annotation {annotation.get('id')} has RLE size {size}, image is {height}x{width}",
            )
    return annotations


def read_unit(unit: Unit, max_pixels: int) -> tuple[list[dict], list[tuple[str, ItemError]]]:
    """Stream one tar and turn its selected pairs into sample rows: (rows, [(key, error)])."""
    rows, errors = [], []
    wanted = {stem for stem, _ in unit.items}
    missing = ItemError("missing_file", f"not in {unit.location}")
    try:
        for stem, parts, problem in iter_pairs(unit.location, set(wanted)):
            wanted.discard(stem)
            try:
                rows.append(_pair_row(unit, stem, parts, problem, max_pixels))
            except ItemError as error:
                errors.append((f"{SOURCE}/{stem}", error))
    except (tarfile.TarError, EOFError, OSError) as error:
        missing = ItemError("truncated_tar", f"{unit.location} ends early: {error}")
    errors.extend((f"{SOURCE}/{stem}", missing) for stem in sorted(wanted))
    return rows, errors


def _pair_row(
    unit: Unit, stem: str, parts: dict[str, bytes], problem: str | None, max_pixels: int
) -> dict[str, Any]:
    if problem is not None:
        raise ItemError("bad_tar_member", problem)
    origin = f"{unit.location}::{stem}.jpg"
    row = sample_row(SOURCE, stem, unit.name, origin, parts[".jpg"], [], max_pixels)
    annotations = parse_annotations(parts[".json"], row["width"], row["height"])
    row["annotations"] = json.dumps(annotations, sort_keys=True, separators=(",", ":"))
    return row
