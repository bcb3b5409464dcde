import io
import json
import tarfile
from unittest.mock import ANY

import fsspec
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dicepipe.imageio import encode_jpeg
from dicepipe.params.encode import EncodeParams
from dicepipe.params.points import PointParams
from dicepipe.params.sample import Sa1bParams, SampleParams
from dicepipe.pipeline.examples import examples_for_item
from dicepipe.records import ItemError
from dicepipe.sampling import item_rng
from dicepipe.sources.common import Unit, collect, points_in_rle, rle_runs
from dicepipe.sources.sa1b import iter_unit, list_stems, plan_units, unsafe_member_reason
from tests.reliability.craft import add_member, deep_json, rle, uncompressed_counts
from tests.sources.counting import register as register_counting
from tests.sources.counting import register_ranges

H, W = 24, 32


def read_unit(unit: Unit, seed: int = 0, **options) -> tuple[list[dict], list]:
    params = SampleParams(seed=seed, max_pixels=10**6, sa1b=Sa1bParams(**options))
    rows, errors, _ = collect(iter_unit(unit, params))
    return rows, errors


def _annotation(ann_id: int, mask: np.ndarray, stability: float = 0.95) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "id": ann_id,
        "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode()},
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "predicted_iou": 0.9,
        "stability_score": stability,
        "point_coords": [[1.0, 1.0]],
        "crop_box": [0, 0, W, H],
    }


def _pair(image_id: int, masks: list[np.ndarray], annotations=None) -> dict[str, bytes]:
    image = np.full((H, W, 3), 90 + image_id, np.uint8)
    record = {
        "image": {"image_id": image_id, "width": W, "height": H, "file_name": f"sa_{image_id}.jpg"},
        "annotations": annotations or [_annotation(i, m) for i, m in enumerate(masks)],
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
    rows, errors = read_unit(unit)
    assert errors == [] and len(rows) == 1
    annotations = json.loads(rows[0]["annotations"])
    for annotation, mask in zip(annotations, masks, strict=True):
        rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
        assert 1 <= len(annotation["prompt_points"]) <= 5
    assert rows[0]["origin"].endswith("sa_000000.tar::sa_7.jpg")


def test_selection_is_by_hash_over_all_tars(tmp_path):
    for t in range(3):
        members = {}
        for i in range(t * 5, t * 5 + 5):
            members.update(_pair(i, [_mask(0, 5, 0, 5)]))
        _write_tar(tmp_path / f"sa_{t:06d}.tar", members)
    assert list_stems(str(tmp_path / "sa_000001.tar")) == ([f"sa_{i}" for i in range(5, 10)], None)
    params = Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=6)
    units = plan_units(params, seed=0)
    picked = [stem for unit in units for stem, _ in unit.items]
    assert len(picked) == 6 and len(set(picked)) == 6
    assert plan_units(params, seed=0) == units
    assert [s for u in plan_units(params, seed=1) for s, _ in u.items] != picked
    assert {u.tasks for u in units} == {("point_segmentation",)}  # the paper's role
    entity = plan_units(Sa1bParams(tars=params.tars, n=6, entity=True), seed=0)
    assert {u.tasks for u in entity} == {("point_segmentation", "entity_segmentation")}


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
    rows, errors = read_unit(unit)
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
    rows, errors = read_unit(unit)
    assert len(rows) + len(errors) == 4 and rows
    assert [r["key"] for r in rows] == ["sa1b/sa_0"]
    assert {e.reason for _, e in errors} == {"truncated_tar"}


def test_unsafe_member_names():
    assert unsafe_member_reason("/etc/passwd") == "absolute path"
    assert unsafe_member_reason("a/../../b.jpg") == "parent-directory component"
    assert unsafe_member_reason("sa_1.jpg") is None


def _tar_unit(tmp_path, members: dict[str, bytes], stems: list[str]) -> Unit:
    _write_tar(tmp_path / "sa_000003.tar", members)
    items = tuple((stem, {}) for stem in stems)
    path = str(tmp_path / "sa_000003.tar")
    return Unit(
        "sa1b", "sa1b-sa_000003", path, items, ("point_segmentation", "entity_segmentation")
    )


def _notes(unit: Unit, **options) -> list[dict]:
    params = SampleParams(max_pixels=10**6, sa1b=Sa1bParams(**options))
    return collect(iter_unit(unit, params))[2]


def test_filters_keep_the_largest_stable_masks_and_note_the_rest(tmp_path):
    annotations = [
        _annotation(10, _mask(0, 20, 0, 30)),  # area 600
        _annotation(11, _mask(0, 2, 0, 2)),  # area 4: below min_area
        _annotation(12, _mask(0, 10, 0, 10), stability=0.5),  # unstable
        _annotation(13, np.zeros((H, W), bool)),  # empty mask
        _annotation(14, _mask(5, 15, 5, 15)),  # area 100
        _annotation(15, _mask(0, 12, 0, 20)),  # area 240
    ]
    unit = _tar_unit(tmp_path, _pair(1, [], annotations), ["sa_1"])
    options = dict(min_area=5, min_stability_score=0.9, max_annotations=2)
    rows, errors = read_unit(unit, **options)
    assert errors == []
    kept = json.loads(rows[0]["annotations"])
    assert [a["id"] for a in kept] == [10, 15]  # the two largest, in input order
    notes = {n["annotation_id"]: n["reason"] for n in _notes(unit, **options)}
    assert notes == {
        11: "min_area",
        12: "min_stability_score",
        13: "empty_mask",
        14: "max_annotations",
    }
    everything = json.loads(read_unit(unit)[0][0]["annotations"])
    assert [a["id"] for a in everything] == [10, 11, 12, 14, 15]  # only the empty mask goes


def test_an_image_left_without_annotations_is_quarantined(tmp_path):
    members = _pair(1, [np.zeros((H, W), bool)])
    members.update(_pair(2, [_mask(0, 3, 0, 3)]))
    members.update(_pair(3, [], [{"bogus": True}]))
    unit = _tar_unit(tmp_path, members, ["sa_1", "sa_2", "sa_3"])
    rows, errors = read_unit(unit, min_area=10)
    assert rows == [] and len(errors) == 3
    assert {k: e.reason for k, e in errors} == {
        "sa1b/sa_1": "no_annotations",
        "sa1b/sa_2": "no_annotations",
        "sa1b/sa_3": "bad_json",
    }
    assert "empty_mask 1" in dict(errors)["sa1b/sa_1"].message


def test_prompt_points_are_seeded_per_annotation_and_inside_the_mask(tmp_path):
    masks = [_mask(2, 10, 3, 20), _mask(12, 22, 5, 9), _mask(20, 21, 30, 32)]
    unit = _tar_unit(tmp_path, _pair(7, masks), ["sa_7"])
    first = json.loads(read_unit(unit, seed=5)[0][0]["annotations"])
    assert json.loads(read_unit(unit, seed=5)[0][0]["annotations"]) == first
    other = json.loads(read_unit(unit, seed=6)[0][0]["annotations"])
    assert [a["prompt_points"] for a in other] != [a["prompt_points"] for a in first]
    for annotation, mask in zip(first, masks, strict=True):
        points = annotation["prompt_points"]
        assert len(points) == 5  # the shared rule repeats pixels of masks smaller than 5
        assert all(mask[int(y * H), int(x * W)] for x, y in points)
        runs = rle_runs(annotation["segmentation"]["counts"], H, W)
        rng = item_rng(5, "sa1b/sa_7", str(annotation["id"]))
        assert points == points_in_rle(runs, H, W, 5, rng)
    fewer = json.loads(read_unit(unit, seed=5, points=PointParams(max=1))[0][0]["annotations"])
    assert [len(a["prompt_points"]) for a in fewer] == [1, 1, 1]


def test_invalid_rle_quarantines_the_image(tmp_path):
    broken = _annotation(1, _mask(0, 4, 0, 4))
    broken["segmentation"]["counts"] = "0`0!!"
    unit = _tar_unit(tmp_path, _pair(1, [], [broken]), ["sa_1"])
    assert [e.reason for _, e in read_unit(unit)[1]] == ["invalid_rle"]


def test_absolute_member_oversize_member_and_duplicates(tmp_path):
    good = _pair(1, [_mask(0, 4, 0, 4)])
    members = dict(good)
    members["/abs/sa_2.jpg"] = good["sa_1.jpg"]
    members["sa_2.json"] = good["sa_1.json"]
    big = _pair(3, [_mask(0, 4, 0, 4)])
    members["sa_3.jpg"] = big["sa_3.jpg"] + b"\0" * (2 << 20)
    members["sa_3.json"] = big["sa_3.json"]
    unit = _tar_unit(tmp_path, members, ["sa_1", "sa_2", "sa_3"])
    with tarfile.open(tmp_path / "sa_000003.tar", "a") as archive:  # a second sa_1 pair
        for name in ("sa_1.jpg", "sa_1.json"):
            info = tarfile.TarInfo(name)
            info.size = len(good[name])
            archive.addfile(info, io.BytesIO(good[name]))
    rows, errors = read_unit(unit, max_member_mb=1)
    assert [r["key"] for r in rows] == ["sa1b/sa_1"]
    assert {k: e.reason for k, e in errors} == {
        "sa1b/sa_2": "bad_tar_member",
        "sa1b/sa_3": "member_too_large",
    }


def test_unreadable_tars_are_counted_as_quarantined_items(tmp_path):
    for tar, first in (("sa_000000.tar", 0), ("full.tar", 10)):
        members = {}
        for i in range(first, first + 4):
            members.update(_pair(i, [_mask(0, 4, 0, 4)]))
        _write_tar(tmp_path / tar, members)
    (tmp_path / "sa_000001.tar").write_bytes(b"")
    (tmp_path / "sa_000002.tar").write_bytes(b"not a tar at all" * 100)
    with tarfile.open(tmp_path / "full.tar") as archive:
        cut = archive.getmembers()[4]  # sa_12.jpg: its data is cut
    data = (tmp_path / "full.tar").read_bytes()
    (tmp_path / "sa_000003.tar").write_bytes(data[: cut.offset_data + 10])
    units = plan_units(Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=100), seed=0)
    params = SampleParams(max_pixels=10**6)
    outcomes = [(u.name, o) for u in units for o in iter_unit(u, params)]
    assert len(outcomes) == sum(len(u.items) for u in units) == 4 + 3 + 3
    reasons = {o.key: o.error.reason for _, o in outcomes if o.error is not None}
    assert reasons == {
        "sa1b/sa_000001.tar": "bad_tar",
        "sa1b/sa_000002.tar": "bad_tar",
        "sa1b/sa_000003.tar": "truncated_tar",  # the listing stopped early
        "sa1b/sa_12": "truncated_tar",  # listed, then cut while streaming
    }
    rows = [name for name, o in outcomes if o.row is not None]
    assert rows.count("sa1b-sa_000000") == 4 and rows.count("sa1b-sa_000003") == 2


def test_tars_from_an_fsspec_url(tmp_path):
    members = {}
    for i in range(3):
        members.update(_pair(i, [_mask(0, 4, 0, 4)]))
    _write_tar(tmp_path / "sa_000000.tar", members)
    fs = fsspec.filesystem("memory")
    fs.pipe("/dicepipe-test-sa1b/sa_000000.tar", (tmp_path / "sa_000000.tar").read_bytes())
    section = Sa1bParams(tars=("memory://dicepipe-test-sa1b/sa_*.tar",), n=2)
    units = plan_units(section, seed=0)
    rows, errors, _ = collect(iter_unit(units[0], SampleParams(max_pixels=10**6, sa1b=section)))
    assert len(rows) == 2 and errors == []
    assert rows[0]["origin"].startswith("memory://")


def test_no_matching_tar_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sample.sa1b.tars"):
        plan_units(Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=2), seed=0)
    assert isinstance(ItemError("a", "b"), Exception)


def test_deeply_nested_json_costs_only_its_own_item(tmp_path):
    members = _pair(1, [_mask(0, 4, 0, 4)])
    members.update(_pair(2, [_mask(0, 4, 0, 4)]))
    members["sa_2.json"] = deep_json()
    members.update(_pair(3, [_mask(2, 9, 2, 9)]))
    unit = _tar_unit(tmp_path, members, ["sa_1", "sa_2", "sa_3"])
    rows, errors = read_unit(unit)
    assert [r["key"] for r in rows] == ["sa1b/sa_1", "sa1b/sa_3"]
    assert {k: e.reason for k, e in errors} == {"sa1b/sa_2": "bad_json"}
    assert "nested too deeply" in errors[0][1].message


def test_an_invalid_rle_beside_good_masks_is_invalid_rle_not_an_empty_mask(tmp_path):
    good = [_annotation(1, _mask(0, 10, 0, 10)), _annotation(2, _mask(12, 20, 5, 25))]
    broken = _annotation(3, _mask(0, 4, 0, 4))
    broken["segmentation"]["counts"] = "0`0!!"  # pycocotools measures it as area 0
    unit = _tar_unit(tmp_path, _pair(1, [], [*good, broken]), ["sa_1"])
    rows, errors = read_unit(unit)
    assert rows == [] and [(k, e.reason) for k, e in errors] == [("sa1b/sa_1", "invalid_rle")]
    assert "annotation 3" in errors[0][1].message
    assert _notes(unit) == []  # not dropped as an empty mask


def test_uncompressed_rle_is_stored_compressed_and_encodes(tmp_path):
    masks = [_mask(2, 10, 3, 20), _mask(0, H, 0, W)]  # the second covers the whole image
    annotations = [_annotation(i, m) for i, m in enumerate(masks)]
    annotations[0]["segmentation"]["counts"] = uncompressed_counts(masks[0])
    annotations[1]["segmentation"]["counts"] = uncompressed_counts(masks[1])
    unit = _tar_unit(tmp_path, _pair(4, [], annotations), ["sa_4"])
    rows, errors = read_unit(unit)
    assert errors == []
    stored = json.loads(rows[0]["annotations"])
    assert [a["segmentation"]["counts"] for a in stored] == [rle(m)["counts"] for m in masks]
    params = EncodeParams(tasks=("point_segmentation", "entity_segmentation"))
    examples = examples_for_item(rows[0], None, None, {}, params)
    assert [e["task"] for e in examples] == ["point_segmentation", "entity_segmentation"]


def test_wrong_field_types_duplicate_ids_and_odd_members(tmp_path):
    members = _pair(1, [_mask(0, 4, 0, 4)])
    twice = [_annotation(5, _mask(0, 4, 0, 4)), _annotation(5, _mask(5, 9, 0, 4))]
    members.update(_pair(2, [], twice))
    nan_score = _annotation(1, _mask(0, 4, 0, 4))
    nan_score["stability_score"] = float("nan")
    members.update(_pair(3, [], [nan_score]))
    string_id = _annotation(1, _mask(0, 4, 0, 4))
    string_id["id"] = "one"
    members.update(_pair(4, [], [string_id]))
    members.update(_pair(5, [], [{**_annotation(1, _mask(0, 4, 0, 4)), "segmentation": 7}]))
    members.update(
        {k.replace("sa_1", "sa_\udcff6"): v for k, v in _pair(1, [_mask(0, 4, 0, 4)]).items()}
    )
    _write_tar(tmp_path / "sa_000003.tar", members)
    with tarfile.open(tmp_path / "sa_000003.tar", "a") as archive:
        add_member(archive, "sa_7.jpg", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add_member(archive, "sa_7.json", _pair(7, [_mask(0, 4, 0, 4)])["sa_7.json"])
    stems = list_stems(str(tmp_path / "sa_000003.tar"))[0]
    assert "sa_\\xff6" in stems  # bytes that are not UTF-8, escaped: a valid item key
    items = tuple((stem, {}) for stem in stems)
    unit = Unit("sa1b", "sa1b-sa_000003", str(tmp_path / "sa_000003.tar"), items)
    rows, errors = read_unit(unit)
    assert sorted(r["key"] for r in rows) == ["sa1b/sa_1", "sa1b/sa_\\xff6"]
    assert {k: e.reason for k, e in errors} == {
        "sa1b/sa_2": "bad_json",
        "sa1b/sa_3": "bad_json",
        "sa1b/sa_4": "bad_json",
        "sa1b/sa_5": "bad_json",
        "sa1b/sa_7": "bad_tar_member",
    }
    messages = {k: e.message for k, e in errors}
    assert "appears twice" in messages["sa1b/sa_2"] and "link" in messages["sa1b/sa_7"]


def _tiny_tars(root, tars: int, per_tar: int = 3) -> None:
    for t in range(tars):
        members = {}
        for i in range(t * per_tar, (t + 1) * per_tar):
            members[f"sa_{i}.jpg"] = b"\xff\xd8" + bytes(64)
            members[f"sa_{i}.json"] = b"{}"
        _write_tar(root / f"sa_{t:06d}.tar", members)


def test_a_second_plan_reads_no_tar_byte(tmp_path):
    counting = register_counting()
    _tiny_tars(tmp_path, 50)
    params = Sa1bParams(tars=(f"counting://{tmp_path}/sa_*.tar",), n=40)
    listings = tmp_path / "listings"
    first = plan_units(params, seed=0, listing_dir=listings)
    assert counting.total(".tar") > 50 * 512  # every tar's headers were read once
    assert len(list(listings.glob("sa1b-*.json"))) == 50
    counting.reset()
    again = plan_units(params, seed=0, listing_dir=listings)
    assert again == first and counting.total(".tar") == 0
    plain = Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=40)
    unlisted = plan_units(plain, seed=0)  # no listing folder: the tars themselves
    assert [u.items for u in unlisted] == [u.items for u in first]


def test_a_changed_tar_is_listed_again(tmp_path):
    _tiny_tars(tmp_path, 2)
    params = Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=100)
    listings = tmp_path / "listings"
    before = {s for u in plan_units(params, 0, listing_dir=listings) for s, _ in u.items}
    _write_tar(tmp_path / "sa_000001.tar", _pair(99, [_mask(0, 4, 0, 4)]))
    after = {s for u in plan_units(params, 0, listing_dir=listings) for s, _ in u.items}
    assert after == before - {"sa_3", "sa_4", "sa_5"} | {"sa_99"}
    assert len(list(listings.glob("sa1b-*.json"))) == 3


def test_a_broken_tar_is_not_remembered(tmp_path):
    _tiny_tars(tmp_path, 1)
    (tmp_path / "sa_000001.tar").write_bytes(b"not a tar at all" * 100)
    params = Sa1bParams(tars=(str(tmp_path / "sa_*.tar"),), n=100)
    listings = tmp_path / "listings"
    units = plan_units(params, 0, listing_dir=listings)
    assert units[-1].items == (("sa_000001.tar", {"tar_problem": "bad_tar", "message": ANY}),)
    assert len(list(listings.glob("sa1b-*.json"))) == 1  # the good tar's only


def test_listing_a_tar_on_object_storage_fetches_headers_not_members(tmp_path):
    ranges = register_ranges()
    members = {f"sa_{i}{ext}": bytes(200_000) for i in range(20) for ext in (".jpg", ".json")}
    _write_tar(tmp_path / "sa_000000.tar", members)
    stems, problem = list_stems(f"ranges://{tmp_path}/sa_000000.tar")
    assert problem is None and stems == sorted(f"sa_{i}" for i in range(20))
    size = (tmp_path / "sa_000000.tar").stat().st_size
    assert ranges.fetched[0] < size / 10  # the default 5 MB read-ahead fetched all of it
