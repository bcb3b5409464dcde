"""Write the embedded sample corpus: synthetic scenes in the real OpenImages, SA-1B and COCO
on-disk layouts, plus the exact labels the ground-truth teacher reads.

    python -m dicepipe.sources.synthetic.corpus --out data/sample --seed 0

Layout under the output folder:
    openimages/image_ids.csv, openimages/images/<ImageID>.jpg
    sa1b/sa_000000.tar, ... (sa_<id>.jpg + sa_<id>.json pairs)
    coco/images/<12-digit id>.jpg, coco/annotations/person_keypoints.json (pose)
    coco_rem/train2017/<12-digit id>.jpg, coco_rem/annotations/instances_trainrem.json
        (COCO-Rem's release: RLE instance masks with categories; semantic segmentation)
    entityv2/images/entity_01_11580/<name>.jpg, entityv2/annotations/entityseg_train_lr.json
        (EntitySeg's release: every region an entity, things and stuff; entity segmentation)
    labels/<source>/<source_id>.npz (depth, normals, instances, instance_kinds, focal_px) for
        openimages, sa1b and coco

The same seed gives the same bytes in every file.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np

from dicepipe.sources.synthetic import formats as fmt
from dicepipe.sources.synthetic.layout import KINDS
from dicepipe.sources.synthetic.people import KEYPOINT_NAMES, SKELETON
from dicepipe.sources.synthetic.render import Scene, render_scene

OPENIMAGES_HEADER = [
    "ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License", "AuthorProfileURL",
    "Author", "Title", "OriginalSize", "OriginalMD5", "Thumbnail300KURL", "Rotation",
]  # fmt: skip
_LICENSE_URL = "https://creativecommons.org/licenses/by/2.0/"
EXIF_ROTATED_ORIENTATION = 6  # stored pixels must be turned 90 degrees clockwise to view


def item_seed(seed: int, source: str, index: int) -> int:
    """A 63-bit render seed for item `index` of `source`, derived from the corpus seed."""
    digest = hashlib.sha256(f"dicepipe-sample:{seed}:{source}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def label_bytes(scene: Scene) -> bytes:
    """The exact-label npz of a scene (upright orientation)."""
    return fmt.npz_bytes(
        {
            "depth": scene.depth.astype(np.float32),
            "normals": scene.normals.astype(np.float16),
            "instances": scene.instances.astype(np.int32),
            "instance_kinds": np.array(scene.instance_kinds, dtype="<U8"),
            "focal_px": np.float32(scene.focal_px),
        }
    )


class _Writer:
    """Writes files under a root and counts them."""

    def __init__(self, root: Path) -> None:
        self.root, self.files, self.bytes = root, 0, 0

    def put(self, relative: str, data: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files += 1
        self.bytes += len(data)

    def label(self, source: str, source_id: str, scene: Scene) -> None:
        self.put(f"labels/{source}/{source_id}.npz", label_bytes(scene))


def _openimages_row(image_id: str, data: bytes, index: int) -> list[str]:
    base = "https://example.com/openimages"
    return [
        image_id,
        "train",
        f"{base}/original/{image_id}_o.jpg",
        f"{base}/photos/{image_id}",
        _LICENSE_URL,
        f"{base}/people/synthetic",
        "dicepipe synthetic renderer",
        f"Synthetic room {index}",
        str(len(data)),
        fmt.md5_base64(data),
        f"{base}/thumbnails/{image_id}_z.jpg",
        "0",
    ]


def write_openimages(out: _Writer, seed: int, n: int, width: int, height: int) -> int:
    """Images plus the index CSV; item 0 carries EXIF Orientation 6 and item 1 is cut to half
    its bytes (its CSV size and MD5 are those of the complete file, so a checksum catches it)."""
    rows = []
    for index in range(n):
        render = item_seed(seed, "openimages", index)
        image_id = f"{render:016x}"[-16:]
        scene = render_scene(render, width, height, n_people=int(index % 3 == 2))
        if index == 0:
            stored = np.ascontiguousarray(np.rot90(scene.rgb, k=1))
            data = fmt.jpeg_bytes(stored, orientation=EXIF_ROTATED_ORIENTATION)
        else:
            data = fmt.jpeg_bytes(scene.rgb)
        on_disk = data[: len(data) // 2] if index == 1 else data
        out.put(f"openimages/images/{image_id}.jpg", on_disk)
        out.label("openimages", image_id, scene)
        rows.append(_openimages_row(image_id, data, index))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(OPENIMAGES_HEADER)
    writer.writerows(sorted(rows))
    out.put("openimages/image_ids.csv", text.getvalue().encode("utf-8"))
    return n


def sa1b_record(image_id: int, scene: Scene, rng: np.random.Generator) -> dict:
    """The SA-1B JSON record of a scene: one mask annotation per visible instance."""
    height, width = scene.depth.shape
    return {
        "image": {
            "image_id": image_id,
            "width": width,
            "height": height,
            "file_name": f"sa_{image_id}.jpg",
        },
        "annotations": fmt.mask_annotations(scene.instances, rng, image_id * 1000),
    }


def write_sa1b(out: _Writer, seed: int, n: int, per_tar: int, width: int, height: int) -> int:
    """`sa_NNNNNN.tar` files of `per_tar` image/JSON pairs each; returns the number of tars."""
    tars = 0
    for start in range(0, n, per_tar):
        members = {}
        for index in range(start, min(start + per_tar, n)):
            render = item_seed(seed, "sa1b", index)
            image_id = seed * 100_000 + index + 1
            scene = render_scene(render, width, height, n_people=int(index % 4 == 3))
            record = sa1b_record(image_id, scene, np.random.default_rng([render, 1]))
            members[f"sa_{image_id}.jpg"] = fmt.jpeg_bytes(scene.rgb)
            members[f"sa_{image_id}.json"] = json.dumps(record).encode("utf-8")
            out.label("sa1b", f"sa_{image_id}", scene)
        out.put(f"sa1b/sa_{tars:06d}.tar", fmt.tar_bytes(members))
        tars += 1
    return tars


def coco_person_annotations(scene: Scene, image_id: int, first_id: int) -> list[dict]:
    """COCO person-keypoint annotations for every figure with visible pixels."""
    people = [i + 1 for i, kind in enumerate(scene.instance_kinds) if kind == "person"]
    annotations = []
    for person, instance in enumerate(people):
        mask = scene.instances == instance
        if not mask.any():
            continue
        segmentation, area, bbox = fmt.encode_mask(mask)
        keypoints: list[float | int] = []
        for x, y, v in scene.keypoints[person].tolist():
            keypoints += [round(x, 2), round(y, 2), int(v)] if v > 0 else [0, 0, 0]
        annotations.append(
            {
                "id": first_id + len(annotations),
                "image_id": image_id,
                "category_id": 1,
                "segmentation": segmentation,
                "area": area,
                "bbox": bbox,
                "iscrowd": 0,
                "keypoints": keypoints,
                "num_keypoints": int((scene.keypoints[person, :, 2] > 0).sum()),
            }
        )
    return annotations


def write_coco(out: _Writer, seed: int, n: int, width: int, height: int) -> int:
    """COCO images and person_keypoints.json with 1-2 figures per image; returns #people."""
    images, annotations = [], []
    for index in range(n):
        render = item_seed(seed, "coco", index)
        image_id = seed * 1_000 + index + 1
        scene = render_scene(render, width, height, n_people=1 + index % 2)
        file_name = f"{image_id:012d}.jpg"
        out.put(f"coco/images/{file_name}", fmt.jpeg_bytes(scene.rgb))
        out.label("coco", f"{image_id:012d}", scene)
        images.append(
            {"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 1}
        )
        annotations += coco_person_annotations(scene, image_id, image_id * 100)
    document = {
        "info": {"description": "dicepipe synthetic sample", "version": "1.0", "year": 2026},
        "licenses": [{"id": 1, "name": "CC BY 2.0", "url": _LICENSE_URL}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "supercategory": "person",
                "id": 1,
                "name": "person",
                "keypoints": list(KEYPOINT_NAMES),
                "skeleton": [list(pair) for pair in SKELETON],
            }
        ],
    }
    out.put("coco/annotations/person_keypoints.json", json.dumps(document).encode("utf-8"))
    return len(annotations)


# Category tables of the instance datasets: the renderer's kinds. COCO-Rem annotates objects
# only (COCO's "things"); EntitySeg annotates every region, stuff included.
COCO_REM_CATEGORIES = {"person": 1, "sphere": 2, "box": 3, "cylinder": 4}
ENTITY_CATEGORIES = {kind: number for number, kind in enumerate(KINDS, start=1)}
ENTITY_FOLDER = "entity_01_11580"  # EntitySeg ships its images in numbered folders


def instance_annotations(
    scene: Scene, image_id: int, first_id: int, categories: dict[str, int]
) -> list[dict]:
    """COCO-format RLE instance annotations of the scene's instances whose kind has a category."""
    annotations = []
    for number, kind in enumerate(scene.instance_kinds, start=1):
        mask = scene.instances == number
        if kind not in categories or not mask.any():
            continue
        segmentation, area, bbox = fmt.encode_mask(mask)
        annotations.append(
            {
                "id": first_id + len(annotations),
                "image_id": image_id,
                "category_id": categories[kind],
                "segmentation": segmentation,
                "area": area,
                "bbox": bbox,
                "iscrowd": 0,
            }
        )
    return annotations


def write_instances(out: _Writer, dataset: str, seed: int, n: int, width: int, height: int) -> int:
    """`coco_rem` or `entityv2` images and annotations JSON in that release's layout; returns
    the number of annotations."""
    categories = COCO_REM_CATEGORIES if dataset == "coco_rem" else ENTITY_CATEGORIES
    images, annotations = [], []
    for index in range(n):
        render = item_seed(seed, dataset, index)
        image_id = seed * 1_000 + index + 1
        scene = render_scene(render, width, height, n_people=index % 2)
        if dataset == "coco_rem":
            file_name, folder = f"{image_id:012d}.jpg", "coco_rem/train2017"
        else:
            file_name, folder = f"{ENTITY_FOLDER}/{render:016x}.jpg", "entityv2/images"
        out.put(f"{folder}/{file_name}", fmt.jpeg_bytes(scene.rgb))
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        annotations += instance_annotations(scene, image_id, image_id * 100, categories)
    names = sorted(categories.items(), key=lambda pair: pair[1])
    document = {
        "info": {"description": f"dicepipe synthetic sample in {dataset}'s layout"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": number, "name": name} for name, number in names],
    }
    json_name = "instances_trainrem.json" if dataset == "coco_rem" else "entityseg_train_lr.json"
    out.put(f"{dataset}/annotations/{json_name}", json.dumps(document).encode("utf-8"))
    return len(annotations)


def write_sample_corpus(
    out_dir: Path,
    seed: int = 0,
    n_openimages: int = 12,
    n_sa1b: int = 12,
    images_per_tar: int = 6,
    n_coco: int = 4,
    width: int = 192,
    height: int = 144,
    n_coco_rem: int = 6,
    n_entityv2: int = 6,
) -> dict:
    """Render and write the whole sample corpus under `out_dir`; returns a summary of counts
    and bytes. Existing files of the same names are overwritten; others are left alone."""
    counts = (n_openimages, n_sa1b, n_coco, n_coco_rem, n_entityv2)
    if min(counts) < 0 or images_per_tar < 1 or min(width, height) < 8:
        raise ValueError("counts must be >= 0, images_per_tar >= 1 and images at least 8x8")
    out = _Writer(Path(out_dir))
    tars = write_sa1b(out, seed, n_sa1b, images_per_tar, width, height)
    return {
        "openimages": write_openimages(out, seed, n_openimages, width, height),
        "openimages_truncated": int(n_openimages >= 2),
        "openimages_exif_rotated": int(n_openimages >= 1),
        "sa1b": n_sa1b,
        "sa1b_tars": tars,
        "coco": n_coco,
        "coco_people": write_coco(out, seed, n_coco, width, height),
        "coco_rem": n_coco_rem,
        "coco_rem_annotations": write_instances(out, "coco_rem", seed, n_coco_rem, width, height),
        "entityv2": n_entityv2,
        "entityv2_annotations": write_instances(out, "entityv2", seed, n_entityv2, width, height),
        "labels": n_openimages + n_sa1b + n_coco,
        "files": out.files,
        "bytes": out.bytes,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: write the sample corpus and print its summary as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/sample"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-openimages", type=int, default=12)
    parser.add_argument("--n-sa1b", type=int, default=12)
    parser.add_argument("--images-per-tar", type=int, default=6)
    parser.add_argument("--n-coco", type=int, default=4)
    parser.add_argument("--n-coco-rem", type=int, default=6)
    parser.add_argument("--n-entityv2", type=int, default=6)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--height", type=int, default=144)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    summary = write_sample_corpus(
        args.out, args.seed, args.n_openimages, args.n_sa1b, args.images_per_tar,
        args.n_coco, args.width, args.height, args.n_coco_rem, args.n_entityv2,
    )  # fmt: skip
    summary["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
