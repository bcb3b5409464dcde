"""The dataset card beside the shards: statistics, teachers, params digest and preview grids.

`shard_stats` is shared with `dicepipe inspect`, so the card and the command always agree.
Everything written is a function of the shards and the arguments (no timestamps, no absolute
paths), so the same shards give the same card, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import yaml

from dicepipe import __version__
from dicepipe.sampling import stable_hash
from dicepipe.storage import (
    Location,
    atomic_write,
    digest_of,
    is_remote,
    listing,
    location,
    parquet_file,
    read_table,
)
from dicepipe.tasks import TASK_NAMES

CARD_NAME = "README.md"
PREVIEW_ROWS = 3
MAX_LISTED_SHARDS = 32  # longer lists stay in manifest.json only
HF_TASK_CATEGORIES = {
    "depth": "depth-estimation",
    "normal": "image-to-image",
    "point_segmentation": "image-segmentation",
    "entity_segmentation": "image-segmentation",
    "semantic_segmentation": "image-segmentation",
    "pose": "keypoint-detection",
}
TARGET_CONVENTIONS = {
    "depth": "disparity (per `depth.space`) between the depth quantiles, to [0, 255], 3 channels",
    "normal": "camera frame (X right, Y up, Z toward the viewer), RGB = (n + 1) / 2 * 255",
    "point_segmentation": "the prompted mask white on black; 1-5 normalised (x, y) in `points`",
    "entity_segmentation": "a random colour per instance on black; colour table in `meta`",
    "semantic_segmentation": "a random colour per instance on black; colour -> category in `meta`",
    "pose": "limbs as coloured lines, keypoints as red (255, 0, 0) discs; keypoints in `meta`",
}


# Params that say how a stage runs, not what it writes: never recorded, never fingerprinted.
EXECUTION_PARAMS = ("runner",)


def params_digest(params: Any) -> str:
    """The short digest of the encode params (a dataclass or a mapping) that change what the
    shards hold (the runner does not): what the card records and unit fingerprints use."""
    return digest_of("encode", _plain(params))


def _plain(params: Any) -> dict[str, Any]:
    """Params as JSON-like data (dataclasses and tuples become dicts and lists), without the
    execution settings (`EXECUTION_PARAMS`)."""
    data = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    data = {k: v for k, v in data.items() if k not in EXECUTION_PARAMS}
    return json.loads(json.dumps(data, sort_keys=True))


def shard_stats(shards_dir: str | Location, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Counts per task x source, teachers per task, image sizes per task and the shard list."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    teachers: dict[str, set[str]] = defaultdict(set)
    sizes: dict[str, list[int]] = {}
    for entry in manifest["shards"]:
        columns = ["task", "source", "teacher", "width", "height"]
        table = read_table(location(shards_dir) / entry["path"], columns=columns).to_pydict()
        for task, source, teacher, width, height in zip(*table.values(), strict=True):
            counts[task][source] += 1
            teachers[task].add(teacher)
            lo_w, hi_w, lo_h, hi_h = sizes.get(task, (width, width, height, height))
            sizes[task] = [min(lo_w, width), max(hi_w, width), min(lo_h, height), max(hi_h, height)]
    tasks = _task_order(counts)
    return {
        "rows": manifest["rows"],
        "bytes": manifest["bytes"],
        "shards": [
            {k: e[k] for k in ("path", "rows", "bytes", "sha256")} for e in manifest["shards"]
        ],
        "tasks": {t: dict(sorted(counts[t].items())) for t in tasks},
        "sources": sorted({s for c in counts.values() for s in c}),
        "teachers": {t: sorted(teachers[t]) for t in tasks},
        "sizes": {t: sizes[t] for t in tasks},
    }


def _task_order(tasks: Mapping[str, Any]) -> list[str]:
    """Known tasks in the canonical order, then any others alphabetically."""
    known = [t for t in TASK_NAMES if t in tasks]
    return known + sorted(set(tasks) - set(known))


def write_card(
    shards_dir: str | Location,
    manifest: Mapping[str, Any],
    params: Any,
    accounting: Mapping[str, Any] | None = None,
    preview_rows: int = PREVIEW_ROWS,
) -> None:
    """Write `README.md` (an HF dataset card) and `preview-<task>.png` beside the shards.

    `params` are the encode params, a dataclass or a mapping (recorded with their digest);
    `accounting` is the encode summary (selected / in shards / quarantined) when known.
    Previews of tasks no longer in the shards are removed, so the folder holds exactly what
    the card references.
    """
    shards_dir = location(shards_dir)
    stats = shard_stats(shards_dir, manifest)
    previews = write_previews(shards_dir, manifest, preview_rows)
    for stale in listing(shards_dir, "preview-*.png"):
        if stale.name not in previews.values():
            stale.unlink()
    text = card_text(shards_dir, stats, params, accounting, previews)
    atomic_write(shards_dir / CARD_NAME, lambda handle: handle.write(text.encode()))


def card_text(
    shards_dir: Location,
    stats: Mapping[str, Any],
    params: Any,
    accounting: Mapping[str, Any] | None,
    previews: Mapping[str, str],
) -> str:
    """The card's markdown: YAML front matter, then statistics, encoding and previews."""
    if is_remote(shards_dir):
        folder = str(shards_dir)  # the URL: the shards are read from there
    else:
        folder = shards_dir.as_posix() if not shards_dir.is_absolute() else shards_dir.name
    lines = [
        "---",
        yaml.safe_dump(_front_matter(stats), sort_keys=False).rstrip(),
        "---",
        "",
        "# dicepipe training shards",
        "",
        "Multi-task examples for a DICEPTION-style generalist perception model: every row is an",
        "input image, a task prompt and the task's target rendered as an RGB image.",
        "",
        "```python",
        "import datasets",
        f'ds = datasets.load_dataset("parquet", data_files="{folder}/*.parquet", split="train")',
        "```",
        "",
        f"{stats['rows']} rows in {len(stats['shards'])} shards, {stats['bytes']:,} bytes.",
        "",
        "## Rows per task and source",
        "",
        *_counts_table(stats),
        "",
        "## Teachers and image sizes",
        "",
        "| task | teachers | width | height | target |",
        "| --- | --- | --- | --- | --- |",
        *(_teacher_row(stats, task) for task in stats["tasks"]),
        "",
        *_accounting_lines(accounting),
        "## Encoding",
        "",
        f"Encode params digest `{params_digest(params)}`, dicepipe {__version__}.",
        "",
        "```yaml",
        yaml.safe_dump(_plain(params), sort_keys=True).rstrip(),
        "```",
        "",
        "## Previews",
        "",
        "Input image | target; prompt points are drawn as red rings.",
        "",
        *(f"### {task}\n\n![{task}]({name})\n" for task, name in previews.items()),
        *_shard_lines(stats),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _front_matter(stats: Mapping[str, Any]) -> dict[str, Any]:
    tasks = stats["tasks"]
    return {
        "pretty_name": "dicepipe multi-task perception shards",
        "license": "other",
        "task_categories": sorted({HF_TASK_CATEGORIES.get(t, "image-to-image") for t in tasks}),
        "tags": ["diception", "multi-task", "dense-prediction", *sorted(tasks)],
        "size_categories": [size_category(stats["rows"])],
        "configs": [
            {"config_name": "default", "data_files": [{"split": "train", "path": "*.parquet"}]}
        ],
    }


def size_category(rows: int) -> str:
    """The Hugging Face Hub size category of a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    for bound, name in bounds:
        if rows < bound:
            return name
    return "n>100M"


def _counts_table(stats: Mapping[str, Any]) -> list[str]:
    sources = stats["sources"]
    lines = ["| task | " + " | ".join(sources) + " | total |"]
    lines.append("| --- |" + " ---: |" * (len(sources) + 1))
    for task, counts in stats["tasks"].items():
        cells = [str(counts.get(s, 0)) for s in sources] + [str(sum(counts.values()))]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    totals = [sum(c.get(s, 0) for c in stats["tasks"].values()) for s in sources]
    lines.append("| **total** | " + " | ".join(map(str, totals)) + f" | {stats['rows']} |")
    return lines


def _teacher_row(stats: Mapping[str, Any], task: str) -> str:
    lo_w, hi_w, lo_h, hi_h = stats["sizes"][task]
    teachers = ", ".join(f"`{t}`" for t in stats["teachers"][task])
    convention = TARGET_CONVENTIONS.get(task, "")
    return f"| {task} | {teachers} | {lo_w}-{hi_w} | {lo_h}-{hi_h} | {convention} |"


def _accounting_lines(accounting: Mapping[str, Any] | None) -> list[str]:
    if not accounting:
        return []
    quarantined = accounting.get("quarantined", {})
    parts = ", ".join(f"{stage} {n}" for stage, n in sorted(quarantined.items()))
    return [
        "## Items",
        "",
        f"{accounting.get('selected', 0)} items selected: {accounting.get('in_shards', 0)} in"
        f" the shards, {sum(quarantined.values())} quarantined ({parts}).",
        "",
    ]


def _shard_lines(stats: Mapping[str, Any]) -> list[str]:
    shards = stats["shards"]
    if len(shards) > MAX_LISTED_SHARDS:
        return ["## Shards", "", f"{len(shards)} shards: see `manifest.json`."]
    lines = ["## Shards", "", "| shard | rows | bytes | sha256 |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {s['path']} | {s['rows']} | {s['bytes']:,} | `{s['sha256']}` |" for s in shards]
    return lines


def preview_rows_of(
    shards_dir: Location, manifest: Mapping[str, Any], per_task: int, seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """Per task, the `per_task` rows with the smallest seeded hash of their key (a spread)."""
    chosen: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for entry in manifest["shards"]:
        path = shards_dir / entry["path"]
        table = read_table(path, columns=["key", "task"]).to_pydict()
        for row, (key, task) in enumerate(zip(table["key"], table["task"], strict=True)):
            chosen[task].append((stable_hash(seed, key), entry["path"], row))
    picked = {task: sorted(rows)[:per_task] for task, rows in chosen.items()}
    wanted: dict[str, set[int]] = defaultdict(set)
    for rows in picked.values():
        for _, name, row in rows:
            wanted[name].add(row)
    loaded = {name: _read_rows(shards_dir / name, rows) for name, rows in sorted(wanted.items())}
    return {
        task: [loaded[name][row] for _, name, row in picked[task]] for task in _task_order(picked)
    }


def _read_rows(path: Location, rows: set[int]) -> dict[int, dict[str, Any]]:
    """Only the row groups holding `rows` are read, never the whole shard."""
    handle = parquet_file(path)
    found, start = {}, 0
    for group in range(handle.num_row_groups):
        size = handle.metadata.row_group(group).num_rows
        inside = sorted(r for r in rows if start <= r < start + size)
        if inside:
            table = handle.read_row_group(group, columns=["image", "target", "points"])
            found.update({r: table.slice(r - start, 1).to_pylist()[0] for r in inside})
        start += size
    return found


def write_previews(
    shards_dir: Location, manifest: Mapping[str, Any], per_task: int = PREVIEW_ROWS
) -> dict[str, str]:
    """Write `preview-<task>.png` (rows of image | target) per task; task -> file name."""
    from dicepipe.imageio import decode_image, encode_png
    from dicepipe.shards.preview import draw_points, grid

    names = {}
    for task, rows in preview_rows_of(shards_dir, manifest, per_task).items():
        tiles = []
        for row in rows:
            image, target = (decode_image(row[c]["bytes"]).rgb for c in ("image", "target"))
            points = row["points"] or []
            tiles.append([draw_points(image, points), draw_points(target, points)])
        picture = grid(tiles, titles=("image", f"{task} target"))
        names[task] = f"preview-{task}.png"
        data = encode_png(picture)
        atomic_write(shards_dir / names[task], lambda handle, data=data: handle.write(data))
    return names
