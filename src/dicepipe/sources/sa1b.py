"""SA-1B: `sa_NNNNNN.tar` files of `sa_<id>.jpg` + `sa_<id>.json`, streamed member by member.

Per-annotation policy at sample time (params `sample.sa1b`):
- an empty mask (RLE area 0) is always dropped, with a note `empty_mask`;
- masks below `min_area` pixels, `min_stability_score` or `min_predicted_iou` are dropped with
  a note naming the filter (a missing score counts as 0);
- of the rest, at most `max_annotations` are kept: the largest by RLE area (ties: higher
  stability score, then lower id), since small masks vanish at training resolution while the
  large ones carry the scene's structure; the dropped ones get a note `max_annotations`;
- an image left with no annotation is quarantined (`no_annotations`); so is one with an RLE
  not of the image's size (`rle_size_mismatch`) or any mask whose RLE is not valid
  (`invalid_rle`: its runs must cover the image exactly; every RLE is checked, in numpy,
  before its area is measured), and one whose JSON cannot be read or holds fields of the
  wrong type, an annotation id twice, or nesting too deep to parse (`bad_json`).
Every kept annotation gets `prompt_points`: `sa1b.points.max` pixels inside its mask
(distinct unless the mask is smaller), normalised [x, y] pixel centres in random order (any
prefix is a uniform sample), drawn by `sampling.pixel_draw` with
`item_rng(seed, key, str(annotation_id))`. Masks stay COCO RLE, always compressed: an
uncompressed RLE (`counts` as a list of ints, which COCO allows) is rewritten as the
compressed string of the same runs, so later stages read one format.
"""

from __future__ import annotations

import json
import math
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import fsspec

from dicepipe.imageio import rle_string
from dicepipe.params.sample import Sa1bParams, SampleParams
from dicepipe.records import guard
from dicepipe.sampling import bottom_k_items, item_rng
from dicepipe.sources.common import (
    ItemError,
    Outcome,
    Rles,
    Unit,
    decode_rles,
    expand_paths,
    sample_row,
    unit_name,
    whole_number,
)
from dicepipe.sources.listings import cached_listing, parallel_map
from dicepipe.storage import Location

SOURCE = "sa1b"
READ_FIELDS = (
    "min_area",
    "min_stability_score",
    "min_predicted_iou",
    "max_annotations",
    "points",
    "max_member_mb",
)
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
POINT_TASKS = ("point_segmentation",)
ENTITY_TASKS = ("point_segmentation", "entity_segmentation")
_PAIR = (".jpg", ".json")
# What a listing fetches per member header from object storage: the default read-ahead of an
# s3fs-like file (MBs) fetched ~90% of every tar just to list it
HEADER_BLOCK = 16 << 10


def unsafe_member_reason(name: str) -> str | None:
    """Why a tar member name is unsafe to trust (absolute path, `..`), or None."""
    if name.startswith("/") or posixpath.isabs(name):
        return "absolute path"
    if ".." in name.split("/"):
        return "parent-directory component"
    return None


def member_stem(name: str) -> tuple[str, str]:
    """(stem, extension) of a tar member's file name; bytes that are not UTF-8 (which tarfile
    keeps as surrogates) are written as `\\xNN`, so every stem is a valid item key."""
    base = posixpath.basename(name).encode("utf-8", "surrogateescape")
    stem, ext = posixpath.splitext(base.decode("utf-8", "backslashreplace"))
    return stem, ext


def list_stems(tar_url: str) -> tuple[list[str], ItemError | None]:
    """The `sa_<id>` stems of a tar's `.jpg`/`.json` members, read from headers only
    (seeking), and the problem that stopped the listing (`bad_tar`, `truncated_tar`) if any."""
    stems: set[str] = set()
    try:
        fs, path = fsspec.core.url_to_fs(tar_url)
        raw = fs.open(path, "rb", block_size=HEADER_BLOCK, cache_type="readahead")
        with raw as handle, tarfile.open(fileobj=handle, mode="r:*") as archive:
            for member in archive:
                stem, ext = member_stem(member.name)
                if member.isfile() and ext in _PAIR:
                    stems.add(stem)
    except _TAR_ERRORS as error:
        reason = "truncated_tar" if stems else "bad_tar"
        return sorted(stems), ItemError(reason, f"{tar_url}: {type(error).__name__}: {error}")
    return sorted(stems), None


def plan_units(params: Sa1bParams, seed: int, listing_dir: Location | None = None) -> list[Unit]:
    """Select `params.n` images over all tars by seeded hash; one unit per tar with a pick.
    Its masks feed point-prompted segmentation, and entity segmentation when `params.entity`.

    Tars are listed in parallel; with `listing_dir`, each listing is kept there, keyed by the
    tar's identity (`listings.file_identity`), so later plans read no tar byte.
    A tar whose listing fails adds one item keyed by the tar's file name, quarantined with the
    reason, so a broken tar shows up in the counts instead of silently contributing nothing.
    """
    if params.n == 0:
        return []
    tars = expand_paths(params.tars)
    if not tars:
        raise FileNotFoundError(f"sample.sa1b.tars: nothing matches {list(params.tars)}")
    per_tar: dict[str, list[tuple[str, dict[str, Any]]]] = {tar: [] for tar in tars}
    found = parallel_map(partial(tar_stems, listing_dir=listing_dir), tars)
    listings = dict(zip(tars, found, strict=True))
    candidates = ((f"{SOURCE}/{s}", (t, s)) for t in tars for s in listings[t][0])
    for _, (tar, stem) in bottom_k_items(candidates, params.n, seed):
        per_tar[tar].append((stem, {}))
    for tar, (_, problem) in listings.items():
        if problem is not None:
            info = {"tar_problem": problem.reason, "message": problem.message}
            per_tar[tar].append((posixpath.basename(tar), info))
    tasks = ENTITY_TASKS if params.entity else POINT_TASKS
    return [
        Unit(SOURCE, unit_name(SOURCE, _tar_stem(tar)), tar, tuple(sorted(items)), tasks)
        for tar, items in sorted(per_tar.items())
        if items
    ]


def tar_stems(
    tar_url: str, listing_dir: Location | None = None
) -> tuple[list[str], ItemError | None]:
    """`list_stems(tar_url)`, through the listing kept in `listing_dir` when one is given."""
    if listing_dir is None:
        return list_stems(tar_url)
    listing = cached_listing(tar_url, listing_dir, SOURCE, _listing)
    problem = listing["problem"]
    return listing["stems"], ItemError(*problem) if problem else None


def _listing(tar_url: str) -> tuple[dict[str, Any], bool]:
    stems, problem = list_stems(tar_url)
    detail = [problem.reason, problem.message] if problem is not None else None
    return {"stems": stems, "problem": detail}, problem is None


def _tar_stem(tar_url: str) -> str:
    return posixpath.splitext(posixpath.basename(tar_url))[0]


def iter_pairs(
    tar_url: str, wanted: set[str], max_bytes: int
) -> Iterator[tuple[str, dict[str, bytes], ItemError | None]]:
    """Stream a tar once, yielding (stem, {".jpg": bytes, ".json": bytes}, problem) once for
    each wanted stem found; `problem` names an unsafe or oversized member or a missing half."""
    pending: dict[str, dict[str, bytes]] = {}
    wanted = set(wanted)
    with fsspec.open(tar_url, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as archive:
        for member in archive:
            stem, ext = member_stem(member.name)
            if stem not in wanted or ext not in _PAIR:
                continue
            problem = _member_problem(member, max_bytes)
            if problem is not None:
                pending.pop(stem, None)
                wanted.discard(stem)
                yield stem, {}, problem
                continue
            archive.members.clear()  # tarfile keeps every header read otherwise: O(tar) memory
            handle = archive.extractfile(member)
            parts = pending.setdefault(stem, {})
            parts[ext] = handle.read() if handle is not None else b""
            if set(_PAIR) <= parts.keys():
                wanted.discard(stem)
                yield stem, pending.pop(stem), None
    for stem, parts in sorted(pending.items()):
        missing = ".json" if ".jpg" in parts else ".jpg"
        yield stem, parts, ItemError("bad_tar_member", f"no {stem}{missing} in the tar")


def _member_problem(member: tarfile.TarInfo, max_bytes: int) -> ItemError | None:
    reason = unsafe_member_reason(member.name)
    if reason is not None:
        return ItemError("bad_tar_member", f"unsafe tar member {member.name!r}: {reason}")
    if not member.isfile():
        kind = "a link" if member.issym() or member.islnk() else "not a regular file"
        return ItemError("bad_tar_member", f"tar member {member.name!r} is {kind}")
    if member.size > max_bytes:
        return ItemError("member_too_large", f"{member.name} is {member.size} bytes")
    return None


def parse_annotations(data: bytes, width: int, height: int) -> list[dict[str, Any]]:
    """Parse an SA-1B JSON and check every annotation's fields and RLE size against the
    decoded image (ids become ints, sizes [height, width])."""
    try:
        document = json.loads(data)
    except RecursionError:
        raise ItemError("bad_json", "annotation JSON is nested too deeply to parse") from None
    except ValueError as error:  # also UnicodeDecodeError
        raise ItemError("bad_json", f"annotation JSON unreadable: {error}") from None
    annotations = document.get("annotations") if isinstance(document, dict) else None
    if not isinstance(annotations, list):
        raise ItemError("bad_json", "annotation JSON has no `annotations` list")
    seen: set[int] = set()
    for index, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise ItemError("bad_json", f"annotation {index} is {type(annotation).__name__}")
        identifier = whole_number(annotation.get("id"))
        if identifier is None:
            raise ItemError("bad_json", f"annotation {index} has id {annotation.get('id')!r}")
        if identifier in seen:
            raise ItemError("bad_json", f"annotation id {identifier} appears twice")
        seen.add(identifier)
        annotation["id"] = identifier
        segmentation = annotation.get("segmentation")
        if not isinstance(segmentation, dict) or "counts" not in segmentation:
            raise ItemError("bad_json", f"annotation {identifier} has no segmentation counts")
        size = segmentation.get("size")
        if not isinstance(size, list) or [whole_number(v) for v in size] != [height, width]:
            raise ItemError(
                "rle_size_mismatch",
                f"annotation {identifier} has RLE size {size}, image is {height}x{width}",
            )
        segmentation["size"] = [height, width]
        for name in ("stability_score", "predicted_iou"):
            _score(annotation, name)
    return annotations


def select_annotations(
    annotations: list[dict[str, Any]], height: int, width: int, params: Sa1bParams
) -> tuple[list[int], list[tuple[int, str]], Rles | None]:
    """Apply the per-annotation filters: (indices kept, in input order; [(annotation id,
    reason)] dropped; the decoded masks of the kept ones). Every RLE is checked first: one
    that is not valid is ItemError `invalid_rle` naming its annotation."""
    if not annotations:
        return [], [], None
    rles = _decode_all(annotations, height, width)
    areas = rles.areas().tolist()
    kept, dropped = [], []
    for index, annotation in enumerate(annotations):
        reason = _filter_reason(annotation, areas[index], params)
        if reason is None:
            kept.append(index)
        else:
            dropped.append((annotation["id"], reason))
    if params.max_annotations is not None and len(kept) > params.max_annotations:
        ranked = sorted(kept, key=lambda i: _size_rank(annotations[i], areas[i]))
        over = set(ranked[params.max_annotations :])
        dropped += [(annotations[i]["id"], "max_annotations") for i in kept if i in over]
        kept = [i for i in kept if i not in over]
    for i in kept:  # uncompressed RLE (a list of runs) becomes the compressed string
        segmentation = annotations[i]["segmentation"]
        if not isinstance(segmentation["counts"], str):
            segmentation["counts"] = rle_string(rles.counts(i))
    return kept, dropped, rles.subset(kept) if kept else None


def _decode_all(annotations: list[dict[str, Any]], height: int, width: int) -> Rles:
    """Every annotation's RLE, checked (numpy: no native decoder sees an unchecked RLE)."""
    counts = [a["segmentation"]["counts"] for a in annotations]
    try:
        return decode_rles(counts, height, width)
    except ItemError:
        pass
    for annotation, value in zip(annotations, counts, strict=True):  # name the first bad one
        try:
            decode_rles([value], height, width)
        except ItemError as error:
            detail = error.message.replace("RLE 0 ", "RLE ", 1)
            raise ItemError("invalid_rle", f"annotation {annotation['id']}: {detail}") from None
    raise ItemError("invalid_rle", "RLE counts of mixed or unknown types")


def _size_rank(annotation: dict[str, Any], area: int) -> tuple[int, float, int]:
    return (-area, -_score(annotation, "stability_score"), annotation["id"])


def _filter_reason(annotation: dict[str, Any], area: int, params: Sa1bParams) -> str | None:
    if area == 0:
        return "empty_mask"
    if area < params.min_area:
        return "min_area"
    if _score(annotation, "stability_score") < params.min_stability_score:
        return "min_stability_score"
    if _score(annotation, "predicted_iou") < params.min_predicted_iou:
        return "min_predicted_iou"
    return None


def _score(annotation: dict[str, Any], name: str) -> float:
    value = annotation.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ItemError("bad_json", f"annotation {annotation['id']}: {name} is {value!r}")
    return float(value)


def iter_unit(unit: Unit, params: SampleParams) -> Iterator[Outcome]:
    """Stream one tar and turn its selected pairs into outcomes; every item of the unit gets
    exactly one, whatever happens to the tar."""
    wanted = set()
    for stem, info in unit.items:
        if "tar_problem" in info:
            yield Outcome(f"{SOURCE}/{stem}", error=ItemError(info["tar_problem"], info["message"]))
        else:
            wanted.add(stem)
    missing = ItemError("missing_file", f"not in {unit.location}")
    pairs = iter_pairs(unit.location, wanted, params.sa1b.max_member_mb << 20)
    while True:
        try:
            stem, parts, problem = next(pairs)
        except StopIteration:
            break
        except _TAR_ERRORS as error:
            missing = ItemError("truncated_tar", f"{unit.location} ends early: {error}")
            break
        wanted.discard(stem)
        yield _pair_outcome(unit, stem, parts, problem, params)
    yield from (Outcome(f"{SOURCE}/{stem}", error=missing) for stem in sorted(wanted))


def _pair_outcome(
    unit: Unit,
    stem: str,
    parts: dict[str, bytes],
    problem: ItemError | None,
    params: SampleParams,
) -> Outcome:
    key = f"{SOURCE}/{stem}"
    result = guard(_pair_row, unit, stem, parts, problem, params)
    if isinstance(result, ItemError):
        return Outcome(key, error=result)
    row, dropped = result
    notes = tuple({"key": key, "annotation_id": i, "reason": r} for i, r in dropped)
    return Outcome(key, row=row, notes=notes)


def _pair_row(
    unit: Unit,
    stem: str,
    parts: dict[str, bytes],
    problem: ItemError | None,
    params: SampleParams,
) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """The sample row of one pair with its kept annotations, and the dropped ones."""
    if problem is not None:
        raise problem
    origin = f"{unit.location}::{stem}.jpg"
    image = parts[".jpg"]
    row = sample_row(
        SOURCE, stem, unit.name, origin, image, [], params.max_pixels, tasks=unit.tasks
    )
    height, width = row["height"], row["width"]
    annotations = parse_annotations(parts[".json"], width, height)
    kept, dropped, rles = select_annotations(annotations, height, width, params.sa1b)
    if not kept:
        raise ItemError("no_annotations", _dropped_summary(len(annotations), dropped))
    rngs = [item_rng(params.seed, row["key"], str(annotations[i]["id"])) for i in kept]
    points = rles.points(list(range(len(kept))), params.sa1b.points.max, rngs)
    for i, chosen in zip(kept, points, strict=True):
        annotations[i]["prompt_points"] = chosen
    kept_json = [annotations[i] for i in kept]
    row["annotations"] = json.dumps(kept_json, sort_keys=True, separators=(",", ":"))
    return row, dropped


def _dropped_summary(total: int, dropped: list[tuple[int, str]]) -> str:
    counts: dict[str, int] = {}
    for _, reason in dropped:
        counts[reason] = counts.get(reason, 0) + 1
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    return f"all {total} annotations dropped" + (f" ({detail})" if detail else "")
