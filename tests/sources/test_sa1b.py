import io
import json
import tarfile

import numpy as np
from pycocotools import mask as mask_utils

from dicepipe.imageio import encode_jpeg
from dicepipe.params import Sa1bParams
from dicepipe.sources.common import Unit
from dicepipe.sources.sa1b import list_stems, plan_units, read_unit, unsafe_member_reason

H, W = 24, 32


def _annotation(ann_id: int, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "id": ann_id,
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()},
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "predicted_iou": 0.9,
        "stability_score": 0.95,
        "point_coords": [[1.0, 1.0]],
        "crop_box": [0, 0, W, H],
    }


def _pair(image_id: int, masks: list[np.ndarray]) -> dict[str, bytes]:
    image = np.full((H, W, 3), 90 + image_id, np.uint8)
    record = {
        "image": {"image_id": image_id, "width": W, "height": H, "file_name": f"sa_{image_id}.jpg"},
        "annotations": [_annotation(i, m) for i, m in enumerate(masks)],
    }
    return {
        f"sa_{image_id}.jpg": encode_jpeg(image),
        f"sa_{image_id}.json": json.dumps(record).encode(),
    }


def _write_tar(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_rle_round_trips_through_the_tar(tmp_path):
    masks = [_mask(2, 10, 3, 20), _mask(12, 22, 5, 9)]
    _write_tar(tmp_path / "sa_000000.tar", _pair(7, masks))
    unit = Unit("sa1b", "sa1b-sa_000000", str(tmp_path / "sa_000000.tar"), (("sa_7", {}),))
    rows, errors = read_unit(unit, max_pixels=10**6)
    assert errors == [] and len(rows) == 1
    annotations = json.loads(rows[0]["annotations"])
    for annotation, mask in zip(annotations, masks, strict=True):
        rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    assert rows[0]["origin"].endswith("sa_000000.tar::sa_7.jpg")


def test_selection_is_by_hash_over_all_tars(tmp_path):
    for t in range(3):
        members = {}
        for i in range(t * 5, t * 5 + 5):
            members.update(_pair(i, [_mask(0, 5, 0, 5)]))
        _write_tar(tmp_path / f"sa_{t:06d}.tar", members)
    assert list_stems(str(tmp_path / "sa_000001.tar")) == [f"sa_{i}" for i in range(5, 10)]
    params = Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=6)
    units = plan_units(params, seed=0)
    picked = [stem for unit in units for stem, _ in unit.items]
    assert len(picked) == 6 and len(set(picked)) == 6
    assert plan_units(params, seed=0) == units
    assert [s for u in plan_units(params, seed=1) for s, _ in u.items] != picked


def test_bad_members_are_quarantined_with_reasons(tmp_path):
    members = {}
    members.update(_pair(1, [_mask(0, 4, 0, 4)]))
    good = _pair(2, [_mask(0, 4, 0, 4)])
    members["sa_2.jpg"] = good["sa_2.jpg"]
    members["sa_2.json"] = b"{not json"
    bad_size = _pair(3, [np.zeros((H + 1, W), bool) | True])
    members.update(bad_size)
    members["../sa_4.jpg"] = good["sa_2.jpg"]
    members["sa_4.json"] = good["sa_2.json"]
    members["sa_5.jpg"] = b"\xff\xd8 not really a jpeg"
    members["sa_5.json"] = good["sa_2.json"]
    members["sa_6.jpg"] = good["sa_2.jpg"]  # json missing
    _write_tar(tmp_path / "sa_000009.tar", members)
    wanted = tuple((f"sa_{i}", {}) for i in range(1, 8))
    unit = Unit("sa1b", "sa1b-sa_000009", str(tmp_path / "sa_000009.tar"), wanted)
    rows, errors = read_unit(unit, max_pixels=10**6)
    reasons = {key: error.reason for key, error in errors}
    assert [r["key"] for r in rows] == ["sa1b/sa_1"]
    assert reasons == {
        "sa1b/sa_2": "bad_json",
        "sa1b/sa_3": "rle_size_mismatch",
        "sa1b/sa_4": "bad_tar_member",
        "sa1b/sa_5": "not_an_image",
        "sa1b/sa_6": "bad_tar_member",
        "sa1b/sa_7": "missing_file",
    }
    assert len(rows) + len(errors) == len(wanted)


def test_truncated_tar_accounts_for_every_wanted_item(tmp_path):
    members = {}
    for i in range(4):
        members.update(_pair(i, [_mask(0, 4, 0, 4)]))
    _write_tar(tmp_path / "full.tar", members)
    with tarfile.open(tmp_path / "full.tar") as archive:
        third = archive.getmembers()[2]  # sa_1.jpg: cut in the middle of its data
    data = (tmp_path / "full.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: third.offset_data + third.size // 2])
    unit = Unit(
        "sa1b", "sa1b-cut", str(tmp_path / "cut.tar"), tuple((f"sa_{i}", {}) for i in range(4))
    )
    rows, errors = read_unit(unit, max_pixels=10**6)
    assert len(rows) + len(errors) == 4 and rows
    assert [r["key"] for r in rows] == ["sa1b/sa_0"]
    assert {e.reason for _, e in errors} == {"truncated_tar"}


def test_unsafe_member_names():
    assert unsafe_member_reason("/etc/passwd") == "absolute path"
    assert unsafe_member_reason("a/../../b.jpg") == "parent-directory component"
    assert unsafe_member_reason("sa_1.jpg") is None
