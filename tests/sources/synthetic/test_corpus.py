"""Tests of the sample corpus writer: real on-disk formats, exact labels, byte determinism."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils

from dicepipe.sources.synthetic.corpus import (
    OPENIMAGES_HEADER,
    item_seed,
    main,
    write_sample_corpus,
)
from dicepipe.sources.synthetic.render import render_scene

W, H = 64, 48
SMALL = {
    "n_openimages": 4,
    "n_sa1b": 3,
    "images_per_tar": 2,
    "n_coco": 2,
    "width": W,
    "height": H,
    "n_coco_rem": 2,
    "n_entityv2": 3,
}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    summary = write_sample_corpus(root, seed=0, **SMALL)
    return root, summary


def _label(root: Path, source: str, source_id: str) -> dict[str, np.ndarray]:
    with np.load(root / "labels" / source / f"{source_id}.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(corpus, tmp_path):
    root, summary = corpus
    write_sample_corpus(tmp_path / "again", seed=0, **SMALL)
    write_sample_corpus(tmp_path / "other", seed=1, **SMALL)
    first = _digests(root)
    assert first == _digests(tmp_path / "again")
    assert len(first) == summary["files"] == 4 + 1 + 2 + 2 + 1 + 9 + (2 + 1) + (3 + 1)
    assert summary["bytes"] == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert set(first.values()).isdisjoint(_digests(tmp_path / "other").values())


def test_openimages_index_matches_files(corpus):
    root, _ = corpus
    text = (root / "openimages" / "image_ids.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(OPENIMAGES_HEADER)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4 and [r["ImageID"] for r in rows] == sorted(r["ImageID"] for r in rows)
    truncated = 0
    for row in rows:
        assert len(row["ImageID"]) == 16 and int(row["ImageID"], 16) >= 0
        assert row["ImageID"] == row["ImageID"].lower() and row["Subset"] == "train"
        data = (root / "openimages" / "images" / f"{row['ImageID']}.jpg").read_bytes()
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        if len(data) == int(row["OriginalSize"]):
            assert md5 == row["OriginalMD5"]
        else:
            truncated += 1
            assert len(data) == int(row["OriginalSize"]) // 2 and md5 != row["OriginalMD5"]
            with pytest.raises(OSError):
                Image.open(io.BytesIO(data)).load()
        assert _label(root, "openimages", row["ImageID"])["depth"].shape == (H, W)
    assert truncated == 1


def test_exif_rotated_image_is_upright_after_transpose(corpus):
    root, _ = corpus
    image_id = f"{item_seed(0, 'openimages', 0):016x}"
    image = Image.open(root / "openimages" / "images" / f"{image_id}.jpg")
    assert image.size == (H, W) and image.getexif()[0x0112] == 6
    upright = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.float64)
    scene = render_scene(item_seed(0, "openimages", 0), W, H, n_people=0)
    assert upright.shape == (H, W, 3)
    assert np.abs(upright - scene.rgb).mean() < 6.0
    np.testing.assert_array_equal(
        _label(root, "openimages", image_id)["instances"], scene.instances
    )


def test_sa1b_tars_are_deterministic_and_rle_matches_instances(corpus):
    root, summary = corpus
    tars = sorted((root / "sa1b").glob("*.tar"))
    assert (
        [t.name for t in tars]
        == ["sa_000000.tar", "sa_000001.tar"]
        == [f"sa_{i:06d}.tar" for i in range(summary["sa1b_tars"])]
    )
    stems = []
    for path in tars:
        assert path.read_bytes()[257:263] == b"ustar\x00"  # POSIX (PAX) headers, not GNU
        with tarfile.open(path) as archive:
            members = archive.getmembers()
            names = [m.name for m in members]
            assert names == sorted(names)
            for m in members:
                assert m.isfile() and m.mtime == 0 and m.mode == 0o644
                assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
            for name in names[1::2]:
                stem = name.removesuffix(".json")
                assert f"{stem}.jpg" in names
                _check_sa1b_pair(root, stem, archive)
                stems.append(stem)
    assert stems == ["sa_1", "sa_2", "sa_3"]


def _check_sa1b_pair(root: Path, stem: str, archive: tarfile.TarFile) -> None:
    record = json.load(archive.extractfile(f"{stem}.json"))
    image = Image.open(archive.extractfile(f"{stem}.jpg"))
    assert image.size == (W, H)
    assert record["image"] == {
        "image_id": int(stem[3:]), "width": W, "height": H, "file_name": f"{stem}.jpg",
    }  # fmt: skip
    instances = _label(root, "sa1b", stem)["instances"]
    assert sorted(a["id"] % 1000 for a in record["annotations"]) == np.unique(instances).tolist()
    for ann in record["annotations"]:
        assert set(ann) == {
            "id", "segmentation", "area", "bbox", "predicted_iou", "stability_score",
            "point_coords", "crop_box",
        }  # fmt: skip
        assert isinstance(ann["segmentation"]["counts"], str)
        assert ann["segmentation"]["size"] == [H, W]
        mask = mask_utils.decode(ann["segmentation"])
        np.testing.assert_array_equal(mask.astype(bool), instances == ann["id"] % 1000)
        assert ann["area"] == int(mask.sum())
        x, y, w, h = ann["bbox"]
        rows, cols = np.nonzero(mask)
        assert (x, y, x + w, y + h) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert 0.85 <= ann["predicted_iou"] <= 1 and 0.85 <= ann["stability_score"] <= 1
        ((px, py),) = ann["point_coords"]
        assert mask[int(py), int(px)]
        assert ann["crop_box"] == [0, 0, W, H]


def test_coco_person_keypoints(corpus):
    root, summary = corpus
    doc = json.loads((root / "coco" / "annotations" / "person_keypoints.json").read_text())
    (category,) = doc["categories"]
    assert category["id"] == 1 and category["name"] == "person"
    assert category["keypoints"][:3] == ["nose", "left_eye", "right_eye"]
    assert len(category["keypoints"]) == 17 and len(category["skeleton"]) == 19
    assert [16, 14] in category["skeleton"]
    assert len(doc["images"]) == 2 and len(doc["annotations"]) == summary["coco_people"] >= 2
    for image in doc["images"]:
        assert image["file_name"] == f"{image['id']:012d}.jpg"
        assert (root / "coco" / "images" / image["file_name"]).is_file()
    for ann in doc["annotations"]:
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0 and len(ann["keypoints"]) == 51
        v = np.array(ann["keypoints"][2::3])
        assert ann["num_keypoints"] == int((v > 0).sum())
        instances = _label(root, "coco", f"{ann['image_id']:012d}")["instances"]
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        (instance,) = np.unique(instances[mask])
        np.testing.assert_array_equal(mask, instances == instance)
        xs, ys = np.array(ann["keypoints"][0::3]), np.array(ann["keypoints"][1::3])
        seen = v == 2
        assert np.all(instances[ys[seen].astype(int), xs[seen].astype(int)] == instance)


def test_label_npz_contents(corpus):
    root, _ = corpus
    files = sorted((root / "labels").rglob("*.npz"))
    assert len(files) == 4 + 3 + 2
    label = _label(root, "sa1b", "sa_1")
    assert label["depth"].dtype == np.float32 and label["depth"].shape == (H, W)
    assert label["normals"].dtype == np.float16 and label["normals"].shape == (H, W, 3)
    assert label["instances"].dtype == np.int32 and label["focal_px"].shape == ()
    assert label["focal_px"].dtype == np.float32 and float(label["focal_px"]) > 0
    scene = render_scene(item_seed(0, "sa1b", 0), W, H, n_people=0)
    np.testing.assert_array_equal(label["depth"], scene.depth)
    assert tuple(label["instance_kinds"].tolist()) == scene.instance_kinds


def test_main_writes_a_corpus(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--seed", "2", "--n-openimages", "2", "--n-sa1b", "1"]
    args += ["--n-coco", "1", "--width", "32", "--height", "24"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["openimages"] == 2 and summary["sa1b_tars"] == 1 and summary["coco"] == 1
    assert (tmp_path / "sa1b" / "sa_000000.tar").is_file()


@pytest.mark.parametrize(
    ("dataset", "json_name", "kinds"),
    [
        ("coco_rem", "instances_trainrem.json", {"person", "sphere", "box", "cylinder"}),
        ("entityv2", "entityseg_train_lr.json", None),
    ],
)
def test_instance_datasets_in_their_release_layout(corpus, dataset, json_name, kinds):
    root, summary = corpus
    document = json.loads((root / dataset / "annotations" / json_name).read_text())
    names = {c["id"]: c["name"] for c in document["categories"]}
    assert kinds is None or set(names.values()) == kinds
    assert len(document["images"]) == summary[dataset]
    assert len(document["annotations"]) == summary[f"{dataset}_annotations"] > 0
    folder = root / dataset / ("train2017" if dataset == "coco_rem" else "images")
    for image in document["images"]:
        assert (folder / image["file_name"]).is_file()
        if dataset == "entityv2":
            assert image["file_name"].startswith("entity_01_11580/")
    for annotation in document["annotations"]:
        mask = mask_utils.decode(
            dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
        )
        assert mask.shape == (H, W) and int(mask.sum()) == annotation["area"] > 0
        assert annotation["category_id"] in names and annotation["iscrowd"] == 0
    if dataset == "entityv2":  # every region is an entity: room surfaces too
        assert {"floor", "wall"} <= {names[a["category_id"]] for a in document["annotations"]}
