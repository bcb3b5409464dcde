"""The `composite` stage: hair-matting composites for point-prompted segmentation."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dicepipe.codescope import stage_code_version
from dicepipe.composite.make import CompositeError, cached_foreground, make_composite
from dicepipe.imageio import ImageDecodeError, decode_image, encode_png
from dicepipe.params.composite import CompositeStageParams
from dicepipe.pipeline.units import is_done, unit_manifest, write_unit
from dicepipe.records import (
    COMPOSITE_SCHEMA,
    QUARANTINE_SCHEMA,
    ItemError,
    guard,
    quarantine_row,
)
from dicepipe.sampling import item_rng
from dicepipe.sources.common import expand_paths, read_bytes
from dicepipe.sources.matting import (
    ForegroundRef,
    decode_foreground,
    list_foregrounds,
    read_foreground,
)
from dicepipe.storage import (
    Location,
    atomic_path,
    atomic_write,
    digest_of,
    listing,
    location,
    parquet_file,
    read_fingerprint,
    read_table,
    sha256_file,
    write_parquet,
)

STAGE = "composite"
Background = tuple[str, str]  # (key or path, where its bytes are: sample parquet or the path)
POOL_SCHEMA = pa.schema([("key", pa.string()), ("where", pa.string())])


def foreground_refs(params: CompositeStageParams) -> list[tuple[str, ForegroundRef]]:
    """(root, ref) of every listed foreground of the configured datasets, sorted by key."""
    refs = []
    for source, root in asdict(params.foregrounds).items():
        if root:
            refs.extend((root, ref) for ref in list_foregrounds(root, source))
    return sorted(refs, key=lambda pair: pair[1].key)


def check_foregrounds(
    refs: list[tuple[str, ForegroundRef]], cache_dir: Path, errors_path: Location
) -> list[str]:
    """Decode every foreground, estimate (and cache) its colour; the usable keys.

    Bad foregrounds (unreadable, empty alpha, alpha size differs) go to the quarantine table
    at `errors_path` with their reason, never into a composite.
    """
    good, errors = [], []
    for root, ref in refs:
        result = guard(_load_foreground, root, ref, cache_dir)
        if isinstance(result, ItemError):
            errors.append(quarantine_row(ref.key, STAGE, result.reason, result.message))
        else:
            good.append(ref.key)
    table = pa.Table.from_pylist(errors, schema=QUARANTINE_SCHEMA)
    write_parquet(errors_path, table)
    return good


def _load_foreground(
    root: str, ref: ForegroundRef, cache_dir: Path
) -> tuple[np.ndarray, np.ndarray]:
    foreground = read_foreground(ref, root)
    rgb, alpha = decode_foreground(foreground)
    colour = cached_foreground(
        cache_dir, foreground.image_bytes, foreground.alpha_bytes, rgb, alpha
    )
    return colour, alpha


def background_pool(params: CompositeStageParams, samples_dir: Location) -> list[Background]:
    """Backgrounds to draw from: sampled images of `background_sources` (where: the sample
    unit's file name in `samples_dir`), or files of a glob (where: the file)."""
    if params.backgrounds != "pool":
        return [(path, path) for path in expand_paths([params.backgrounds])]
    pool = []
    for path in listing(samples_dir, "*.parquet"):
        if path.stem.split("-", 1)[0] in params.background_sources:
            keys = read_table(path, columns=["key"])["key"].to_pylist()
            pool.extend((key, path.name) for key in keys)
    return sorted(pool)


@dataclass(frozen=True)
class PoolRef:
    """The background pool as composite units receive it: a Parquet file of (key, where)
    rows named by its content hash, never the pairs themselves (900k pairs would be tens of
    MB pickled into every task and hashed into every fingerprint). `samples` is the folder
    the pool's sample unit names are in: a place, not content, so not in the hash."""

    path: str
    sha256: str
    size: int  # backgrounds in the pool
    samples: str = ""


def write_pool(
    pool: list[Background], folder: Location, samples_dir: Location | None = None
) -> PoolRef:
    """Write the pool once to `<folder>/pool-<sha256>.parquet` (atomically; pools of earlier
    plans are removed) and return its reference. The sample units it draws from (in
    `samples_dir`) are named with their fingerprints in the file's metadata, so the pool's
    hash changes when their images do, wherever the folders lie."""
    table = pa.table(
        {"key": [key for key, _ in pool], "where": [where for _, where in pool]},
        schema=POOL_SCHEMA,
    )
    if samples_dir is not None:
        names = sorted({where for _, where in pool if where.endswith(".parquet")})
        versions = {name: read_fingerprint(samples_dir / name) for name in names}
        table = table.replace_schema_metadata({"sample_units": json.dumps(versions)})
    with tempfile.TemporaryDirectory() as scratch:
        draft = Path(scratch) / "pool.parquet"
        write_parquet(draft, table)
        digest = sha256_file(draft)
        path = folder / f"pool-{digest}.parquet"
        if not path.exists():
            with atomic_path(path) as tmp:
                shutil.copyfile(draft, tmp)
    for old in listing(folder, "pool-*.parquet"):
        if old.name != path.name:
            old.unlink()
    return PoolRef(str(path), digest, len(pool), "" if samples_dir is None else str(samples_dir))


@lru_cache(maxsize=4)
def read_pool(path: str, sha256: str) -> pa.Table:
    """The pool table of a reference (read once per process); a ValueError when the file is
    not the one the units were planned with."""
    if sha256_file(path) != sha256:
        raise ValueError(f"{path} is not the background pool {sha256[:12]}: run the stage again")
    return parquet_file(path).read()  # not the dataset reader: ~40 MB less RSS per worker


def plan(params: CompositeStageParams) -> list[tuple[int, int]]:
    """Composite index ranges [start, stop), one per work unit."""
    return [
        (start, min(start + params.per_unit, params.count))
        for start in range(0, params.count, params.per_unit)
    ]


def unit_name(block: tuple[int, int], params: CompositeStageParams) -> str:
    """File-name-safe unit name of an index range."""
    return f"{STAGE}-{block[0] // params.per_unit:06d}"


def run_unit(
    block: tuple[int, int],
    params: CompositeStageParams,
    foregrounds: list[tuple[str, ForegroundRef]],
    pool: PoolRef,
    cache_dir: Path,
    out_dir: Location,
) -> dict[str, Any]:
    """Make composites `block[0]..block[1]-1` into `<out_dir>/<unit>.parquet`.

    Composite i draws its foreground and background from `item_rng(seed, key, "choice")` and
    everything else inside `make_composite(..., seed, i)`, so it can be regenerated alone.
    """
    name = unit_name(block, params)
    keys = [ref.key for _, ref in foregrounds]
    fingerprint = digest_of(
        STAGE, block, _params_digest(params), keys, pool.sha256, stage_code_version(STAGE)
    )
    if not is_done(out_dir, name, fingerprint):
        backgrounds = read_pool(pool.path, pool.sha256) if pool.size else POOL_SCHEMA.empty_table()
        rows, errors = [], []
        for index in range(*block):
            # a foreground that changed since it was checked is a BadForeground item error
            result = guard(
                _composite_row, index, name, params, foregrounds, backgrounds, pool, cache_dir
            )
            if isinstance(result, ItemError):
                errors.append((f"{STAGE}/{index:08d}", result))
            else:
                rows.append(result)
        write_unit(out_dir, name, rows, COMPOSITE_SCHEMA, errors, STAGE, fingerprint)
    return {**unit_manifest(out_dir, name), "items": block[1] - block[0]}


def _params_digest(params: CompositeStageParams) -> str:
    content = {k: v for k, v in asdict(params).items() if k != "runner"}
    return digest_of(content)


def _composite_row(
    index: int,
    unit: str,
    params: CompositeStageParams,
    foregrounds: list[tuple[str, ForegroundRef]],
    backgrounds: pa.Table,
    pool: PoolRef,
    cache_dir: Path,
) -> dict[str, Any]:
    if not foregrounds or not backgrounds.num_rows:
        message = f"{len(foregrounds)} foregrounds, {backgrounds.num_rows} backgrounds"
        raise ItemError("no_inputs", message)
    key = f"{STAGE}/{index:08d}"
    rng = item_rng(params.seed, key, "choice")
    root, ref = foregrounds[int(rng.integers(len(foregrounds)))]
    chosen = int(rng.integers(backgrounds.num_rows))
    background_key = backgrounds["key"][chosen].as_py()
    where = backgrounds["where"][chosen].as_py()
    colour, alpha = _load_foreground(root, ref, cache_dir)
    try:
        made = make_composite(
            colour,
            alpha,
            _background(background_key, where, pool.samples),
            params.geometry,
            params.seed,
            index,
        )
    except CompositeError as error:
        raise ItemError("empty_composite", str(error)) from None
    size = params.geometry.size
    return {
        "key": key,
        "source": ref.source,
        "source_id": f"{index:08d}",
        "unit": unit,
        "origin": f"{ref.key} on {background_key}",
        "image": encode_png(made.image),
        "alpha": encode_png(made.alpha),
        "target": encode_png(made.target),
        "points": made.points.tolist(),
        "width": size,
        "height": size,
        "meta": json.dumps({**made.meta, "foreground": ref.key, "background": background_key}),
    }


@lru_cache(maxsize=64)
def _background(key: str, where: str, samples: str) -> np.ndarray:
    try:
        if where.endswith(".parquet"):
            unit = location(samples) / where
            table = read_table(unit, columns=["image"], filters=[("key", "=", key)])
            data = table["image"][0].as_py()
        else:
            data = read_bytes(where)
        return decode_image(data).rgb
    except ImageDecodeError as error:
        raise ItemError("bad_background", f"{key}: {error}") from None


def write_preview(out_dir: Location, path: Location, limit: int = 6) -> None:
    """A grid of the first composites: image | alpha | target with its prompt points."""
    from dicepipe.shards.preview import draw_points, grid

    rows = []
    for unit in listing(out_dir, f"{STAGE}-*.parquet"):
        for row in read_table(unit).to_pylist()[: limit - len(rows)]:
            image, alpha, target = (decode_image(row[c]).rgb for c in ("image", "alpha", "target"))
            rows.append([image, alpha, draw_points(target, row["points"])])
    if rows:
        picture = grid(rows, titles=("composite", "alpha", "mask + points"))
        atomic_write(path, lambda handle: handle.write(encode_png(picture)))
