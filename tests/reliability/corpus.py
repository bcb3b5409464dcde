"""A bad-input corpus: every kind of broken file we know of, beside good items, in the real
on-disk layouts of OpenImages, SA-1B, COCO-format annotations, the matting datasets and the
exact-label files, with what must become of each item.

`build_corpus(root)` writes it under `root` and returns the cases and the params of every
stage. A case is a key, the kind of fault (a short description), and where the item must end:
`stage`/`reason` of its quarantine row, or `stage=None` for a good item that must reach the
shards unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dicepipe.imageio import encode_jpeg, encode_png
from dicepipe.params.composite import CompositeParams, CompositeStageParams, MattingRoots
from dicepipe.params.encode import EncodeParams
from dicepipe.params.label import LabelParams
from dicepipe.params.points import PointParams
from dicepipe.params.runner import RunnerParams
from dicepipe.params.sample import CocoParams, OpenImagesParams, Sa1bParams, SampleParams
from tests.reliability.craft import (
    add_member,
    box,
    deep_json,
    jpeg,
    picture,
    rle,
    rotated_jpeg,
    text_orientation_jpeg,
    uncompressed_counts,
)

H, W = 24, 32  # most pictures; rotated ones are W x H upright


@dataclass(frozen=True)
class Case:
    key: str
    kind: str
    stage: str | None = None  # None: a good item, in the shards
    reason: str | None = None


@dataclass
class Corpus:
    root: Path
    cases: list[Case]
    sample: SampleParams
    label: LabelParams
    composite: CompositeStageParams
    encode: EncodeParams
    foreground_cases: list[Case]  # matting pairs: quarantined by the composite stage's check


def _image_bytes(rgb: np.ndarray | Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge image and whose pixel data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


HTML = b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n"


# --------------------------------------------------------------------------- OpenImages


def _label_npz(height: int, width: int, seed: int, **override) -> bytes:
    rng = np.random.default_rng(seed)
    arrays = {
        "depth": (1.0 + rng.random((height, width))).astype(np.float32),
        "normals": np.dstack([np.zeros((height, width, 2)), np.ones((height, width, 1))]).astype(
            np.float32
        ),
        "focal_px": np.float32(30.0),
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _openimages(root: Path, labels: Path) -> list[Case]:
    images = root / "images"
    images.mkdir(parents=True)
    (labels / "openimages").mkdir(parents=True)
    cases: list[Case] = []
    rows: list[list[str]] = []
    rgb = picture(1)

    def item(image_id: str, data: bytes | None, kind: str, stage=None, reason=None, **row):
        if data is not None:
            (images / f"{image_id}.jpg").write_bytes(data)
        rows.append([image_id, "train", row.get("md5", ""), row.get("rotation", "0")])
        cases.append(Case(f"openimages/{image_id}", kind, stage, reason))

    def label(image_id: str, data: bytes) -> None:
        (labels / "openimages" / f"{image_id}.npz").write_bytes(data)

    good = jpeg(0)
    for n in range(3):
        item(f"oi_good{n}", jpeg(10 + n), "good JPEG")
        label(f"oi_good{n}", _label_npz(H, W, n))
    item("oi_zero", b"", "zero-byte file", "sample", "empty")
    item("oi_trunc", good[: len(good) // 2], "truncated JPEG", "sample", "truncated")
    item("oi_html", HTML, "HTML page saved as .jpg", "sample", "not_an_image")
    item(
        "oi_pdf",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
        "PDF under .jpg",
        "sample",
        "not_an_image",
    )
    item("oi_bomb", _image_bytes(Image.new("1", (1000, 1200)), "PNG"), "decompression bomb",
         "sample", "too_many_pixels")  # fmt: skip
    item("oi_hugehdr", _png_header_only(100_000, 100_000), "huge declared size, no pixels",
         "sample", "too_many_pixels")  # fmt: skip
    item("oi_missing", None, "index row without a file", "sample", "missing_file")
    (images / "oi_dir.jpg").mkdir()
    item("oi_dir", None, "a folder named like the image", "sample", "unreadable_file")
    item("../oi_escape", None, "id with a path in it", "sample", "bad_id")
    item("oi_rot45", good, "Rotation not a multiple of 90", "sample", "bad_rotation",
         rotation="45")  # fmt: skip
    item("oi_rotword", good, "Rotation not a number", "sample", "bad_rotation", rotation="left")
    # Other formats under .jpg, turned into canonical PNG: good items.
    gray16 = rgb[..., 0].astype(np.uint16) * 257
    rgba = np.dstack([rgb, np.full((H, W), 128, np.uint8)])
    formats = {
        "oi_png": ("PNG under .jpg", _image_bytes(rgb, "PNG")),
        "oi_gif": ("GIF under .jpg", _image_bytes(rgb, "GIF")),
        "oi_bmp": ("BMP under .jpg", _image_bytes(rgb, "BMP")),
        "oi_tiff": ("TIFF under .jpg", _image_bytes(rgb, "TIFF")),
        "oi_webp": ("lossless WebP under .jpg", _image_bytes(rgb, "WEBP", lossless=True)),
        "oi_cmyk": ("CMYK JPEG", _image_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG")),
        "oi_gray16": ("16-bit grayscale PNG", _image_bytes(gray16, "PNG")),
        "oi_rgba": ("RGBA PNG", _image_bytes(rgba, "PNG")),
        "oi_exiftext": ("EXIF Orientation that is a string", text_orientation_jpeg(2, f35=35)),
    }  # fmt: skip
    for image_id, (kind, data) in formats.items():
        item(image_id, data, kind)
        label(image_id, _label_npz(H, W, 7))
    item("oi_exifrot", rotated_jpeg(3, 6, f35=28), "EXIF-rotated JPEG with a focal length")
    label("oi_exifrot", _label_npz(W, H, 8))  # upright: W x H
    # Exact-label files that are broken: quarantined by the label stage.
    broken_labels = {
        "oi_nolabel": ("image without its label file", None, "missing_label"),
        "oi_zeronpz": ("zero-byte label file", b"", "bad_label_file"),
        "oi_truncnpz": ("truncated label file", _label_npz(H, W, 1)[:200], "bad_label_file"),
        "oi_nodepth": ("label file without depth", _label_npz(H, W, 1, depth=None),
                       "bad_label_file"),
        "oi_shape": ("label of another size", _label_npz(H + 1, W, 1), "label_size_mismatch"),
        "oi_nanfocal": ("label with a NaN focal length",
                        _label_npz(H, W, 1, focal_px=np.float32("nan")), "bad_label_file"),
        "oi_pickle": ("label file holding a pickle",
                      _label_npz(H, W, 1, depth=np.array([{}], object)), "bad_label_file"),
        "oi_htmlnpz": ("HTML saved as the label file", HTML, "bad_label_file"),
    }  # fmt: skip
    for n, (image_id, (kind, data, reason)) in enumerate(broken_labels.items()):
        item(image_id, jpeg(40 + n), kind, "label", reason)
        if data is not None:
            label(image_id, data)
    nan_depth = np.full((H, W), np.nan, np.float32)
    item("oi_nandepth", jpeg(60), "label whose depth is all NaN", "encode", "bad_depth")
    label("oi_nandepth", _label_npz(H, W, 1, depth=nan_depth))

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["ImageID", "Subset", "OriginalMD5", "Rotation"])
    writer.writerows(rows)
    body = text.getvalue().encode()
    body += b"oi_good0,train,,0\n"  # the same id twice: one item
    body += b"oi_short,train\n"  # too few fields
    cases.append(
        Case("openimages/oi_short", "index row with too few fields", "sample", "bad_index_row")
    )
    body += b"oi_long,train,,0,surplus\n"
    cases.append(
        Case("openimages/oi_long", "index row with too many fields", "sample", "bad_index_row")
    )
    number = len(rows) + 3  # rows, the repeated id, the two malformed rows
    body += b",train,,0\n"
    cases.append(Case(f"openimages/index.csv:row-{number}", "index row without an ImageID",
                      "sample", "bad_index_row"))  # fmt: skip
    body += b"oi_\xffbyte,train,,0\n"
    cases.append(
        Case("openimages/oi_\ufffdbyte", "index row that is not UTF-8", "sample", "bad_id")
    )
    (root / "index.csv").write_bytes(b"\xef\xbb\xbf" + body)  # with a byte-order mark
    return cases


# --------------------------------------------------------------------------------- SA-1B


def _annotation(ann_id: int, mask: np.ndarray, **extra) -> dict:
    return {
        "id": ann_id,
        "segmentation": rle(mask),
        "area": int(mask.sum()),
        "bbox": [0, 0, 1, 1],
        "predicted_iou": 0.9,
        "stability_score": 0.95,
        "point_coords": [[1.0, 1.0]],
        "crop_box": [0, 0, W, H],
        **extra,
    }


def _record(image_id: int, annotations: list) -> bytes:
    image = {"image_id": image_id, "width": W, "height": H, "file_name": f"sa_{image_id}.jpg"}
    return json.dumps({"image": image, "annotations": annotations}).encode()


def _masks() -> list[np.ndarray]:
    return [box(H, W, 2, 12, 3, 20), box(H, W, 14, 22, 5, 28)]


def _sa1b(root: Path) -> list[Case]:
    root.mkdir(parents=True)
    cases: list[Case] = []
    good_json = _record(1, [_annotation(i, m) for i, m in enumerate(_masks())])
    tar_path = root / "sa_000000.tar"
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as archive:

        def pair(
            stem: str, image: bytes | None, record: bytes | None, kind, stage=None, reason=None
        ):
            if image is not None:
                add_member(archive, f"{stem}.jpg", image)
            if record is not None:
                add_member(archive, f"{stem}.json", record)
            cases.append(Case(f"sa1b/{stem}", kind, stage, reason))

        pair("sa_1", jpeg(101), good_json, "good pair")
        uncompressed = [_annotation(i, m) for i, m in enumerate(_masks())]
        for annotation, mask in zip(uncompressed, _masks(), strict=True):
            annotation["segmentation"]["counts"] = uncompressed_counts(mask)
        pair("sa_2", jpeg(102), _record(2, uncompressed), "uncompressed RLE (counts a list)")
        pair("sa_3", jpeg(103), deep_json(), "JSON nested 100000 deep", "sample", "bad_json")
        pair("sa_4", jpeg(104), b'{"annotations": [', "truncated JSON", "sample", "bad_json")
        pair("sa_5", jpeg(105), b"[1, 2, 3]", "JSON that is a list", "sample", "bad_json")
        string_id = [_annotation(0, _masks()[0]) | {"id": "first"}]
        pair(
            "sa_6", jpeg(106), _record(6, string_id), "annotation id a string", "sample", "bad_json"
        )
        twice = [_annotation(5, m) for m in _masks()]
        pair("sa_7", jpeg(107), _record(7, twice), "annotation id twice", "sample", "bad_json")
        nan = [_annotation(0, _masks()[0], stability_score=float("nan"))]
        pair("sa_8", jpeg(108), _record(8, nan), "NaN stability score", "sample", "bad_json")
        broken = [_annotation(i, m) for i, m in enumerate(_masks())]
        broken.append(
            _annotation(9, _masks()[0]) | {"segmentation": {"size": [H, W], "counts": "0`0!!"}}
        )
        pair(
            "sa_9",
            jpeg(109),
            _record(9, broken),
            "invalid RLE beside good masks",
            "sample",
            "invalid_rle",
        )
        size = [_annotation(0, box(H + 2, W, 0, 4, 0, 4))]
        pair(
            "sa_10",
            jpeg(110),
            _record(10, size),
            "RLE of another size",
            "sample",
            "rle_size_mismatch",
        )
        empty = [_annotation(0, np.zeros((H, W), bool))]
        pair("sa_11", jpeg(111), _record(11, empty), "only empty masks", "sample", "no_annotations")
        add_member(archive, "../sa_12.jpg", jpeg(112))
        pair("sa_12", None, _record(12, []), "member path with ..", "sample", "bad_tar_member")
        add_member(archive, "/abs/sa_13.jpg", jpeg(113))
        pair("sa_13", None, _record(13, []), "absolute member path", "sample", "bad_tar_member")
        add_member(archive, "sa_14.jpg", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        pair("sa_14", None, good_json, "member that is a symlink", "sample", "bad_tar_member")
        add_member(archive, "sa_15.jpg", type=tarfile.LNKTYPE, linkname="sa_1.jpg")
        pair("sa_15", None, good_json, "member that is a hard link", "sample", "bad_tar_member")
        pair("sa_16", jpeg(116), None, "image without its JSON", "sample", "bad_tar_member")
        pair("sa_17", None, good_json, "JSON without its image", "sample", "bad_tar_member")
        big = jpeg(118) + b"\0" * (1 << 20)
        pair("sa_18", big, good_json, "member over max_member_mb", "sample", "member_too_large")
        pair("sa_19", b"", good_json, "zero-byte image member", "sample", "empty")
        pair("sa_20", HTML, good_json, "HTML as the image member", "sample", "not_an_image")
        pair("sa_21", jpeg(121), b'{"annotations": "\xff\xfe"}', "JSON that is not UTF-8",
             "sample", "bad_json")  # fmt: skip
        pair("sa_\udcff22", jpeg(122), good_json, "member name that is not UTF-8")
        cases[-1] = Case("sa1b/sa_\\xff22", cases[-1].kind)
        pair("sa_23", jpeg(123), good_json, "pair stored twice (first wins)")
        add_member(archive, "sa_23.jpg", b"")
        add_member(archive, "sa_23.json", b"")
        counts_int = [_annotation(0, _masks()[0]) | {"segmentation": {"size": [H, W], "counts": 5}}]
        pair(
            "sa_24",
            jpeg(124),
            _record(24, counts_int),
            "RLE counts a number",
            "sample",
            "invalid_rle",
        )
        over = [
            _annotation(0, _masks()[0]) | {"segmentation": {"size": [H, W], "counts": [H * W + 5]}}
        ]
        pair("sa_25", jpeg(125), _record(25, over), "uncompressed RLE longer than the image",
             "sample", "invalid_rle")  # fmt: skip
        no_seg = [{"id": 1, "area": 5}]
        pair("sa_26", jpeg(126), _record(26, no_seg), "annotation without segmentation",
             "sample", "bad_json")  # fmt: skip
    # A tar cut in the middle of a member, an empty tar, an HTML page named like a tar.
    members = {}
    for i in (30, 31):
        members[f"sa_{i}.jpg"] = jpeg(i)
        members[f"sa_{i}.json"] = _record(i, [_annotation(0, _masks()[0])])
    full = root / "full.tmp"
    with tarfile.open(full, "w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            add_member(archive, name, data)
    with tarfile.open(full) as archive:
        cut = archive.getmembers()[2]  # sa_31.jpg
    (root / "sa_000001.tar").write_bytes(full.read_bytes()[: cut.offset_data + cut.size // 2])
    full.unlink()
    cases.append(Case("sa1b/sa_30", "good pair before the cut of a truncated tar"))
    cases.append(Case("sa1b/sa_31", "pair cut by the end of the tar", "sample", "truncated_tar"))
    cases.append(Case("sa1b/sa_000001.tar", "tar cut mid-member", "sample", "truncated_tar"))
    (root / "sa_000002.tar").write_bytes(b"")
    cases.append(Case("sa1b/sa_000002.tar", "zero-byte tar", "sample", "bad_tar"))
    (root / "sa_000003.tar").write_bytes(HTML * 20)
    cases.append(Case("sa1b/sa_000003.tar", "HTML page saved as .tar", "sample", "bad_tar"))
    return cases


# ---------------------------------------------------------------------------------- COCO

SEVENTEEN = [float(v) for k in range(17) for v in (5 + k, 3 + k % 10, 2)]
SQUARE = [4.0, 3.0, 26.0, 3.0, 26.0, 20.0, 4.0, 20.0]


def _coco(root: Path) -> list[Case]:
    (root / "images").mkdir(parents=True)
    cases: list[Case] = []
    images: list[dict] = []
    annotations: list[dict] = []
    next_ann = [1000]

    def person(image_id: int, **extra) -> dict:
        next_ann[0] += 1
        annotation = {
            "id": next_ann[0],
            "image_id": image_id,
            "category_id": 1,
            "segmentation": [SQUARE],
            "area": 374.0,
            "bbox": [4.0, 3.0, 22.0, 17.0],
            "iscrowd": 0,
            "keypoints": SEVENTEEN,
            "num_keypoints": 17,
        }
        annotation.update(extra)
        annotations.append(annotation)
        return annotation

    def image(image_id: int, kind: str, stage=None, reason=None, data=b"ok", **record):
        name = record.pop("file_name", f"{image_id:012d}.jpg")
        images.append({"id": image_id, "file_name": name, "width": W, "height": H, **record})
        if data is not None and isinstance(name, str) and "/" not in name:
            (root / "images" / name).write_bytes(jpeg(200 + image_id) if data == b"ok" else data)
        cases.append(Case(f"coco/{image_id:012d}", kind, stage, reason))

    image(1, "good person: polygon and 17 keypoints")
    person(1)
    image(2, "good uncompressed RLE")
    person(2, segmentation={"size": [H, W], "counts": uncompressed_counts(box(H, W, 2, 9, 4, 20))})
    image(3, "polygon of 2 points", "sample", "polygon_too_few_points")
    person(3, segmentation=[[4.0, 3.0, 26.0, 3.0]])
    image(4, "polygon at 1e9 px (pycocotools segfaults)", "sample", "polygon_out_of_bounds")
    person(4, segmentation=[[1e9, 1e9, 2e9, 5.0, 30.0, 20.0]])
    image(5, "polygon with NaN", "sample", "bad_polygon")
    person(5, segmentation=[[4.0, float("nan"), 26.0, 3.0, 26.0, 20.0]])
    image(6, "image file missing", "sample", "missing_file", data=None)
    person(6)
    image(7, "declared width differs from the file", "sample", "size_mismatch", width=W + 3)
    image(
        8, "declared size over max_pixels", "sample", "too_many_pixels", width=10**5, height=10**5
    )
    image(9, "negative declared size", "sample", "bad_image_record", height=-H)
    image(10, "file name leaving the images root", "sample", "bad_id", file_name="../10.jpg")
    image(11, "image id twice", "sample", "duplicate_id")
    images.append({"id": 11, "file_name": "other.jpg", "width": W, "height": H})
    image(12, "16 keypoints, the category has 17", "sample", "bad_keypoints")
    person(12, keypoints=SEVENTEEN[:48])
    image(13, "keypoint at 1e12 px", "sample", "keypoints_out_of_bounds")
    person(13, keypoints=[1e12, 3.0, 2.0] + SEVENTEEN[3:])
    image(14, "keypoint visibility 5", "sample", "bad_keypoints")
    person(14, keypoints=SEVENTEEN[:2] + [5.0] + SEVENTEEN[3:])
    image(15, "people with 17 and 2 keypoints", "sample", "keypoint_count_mismatch")
    person(15)
    person(15, category_id=2, keypoints=[5.0, 5.0, 2.0, 9.0, 9.0, 2.0], num_keypoints=2)
    image(16, "annotation id twice in one image", "sample", "duplicate_id")
    twin = person(16)
    annotations.append(dict(twin))
    image(17, "uncompressed RLE that does not cover the image", "sample", "invalid_rle")
    person(17, segmentation={"size": [H, W], "counts": [5, 10**6]})
    image(18, "RLE of another size", "sample", "rle_size_mismatch")
    person(18, segmentation={"size": [H + 1, W], "counts": [(H + 1) * W]})
    image(19, "segmentation is a string", "sample", "bad_annotation")
    person(19, segmentation="polygon")
    image(20, "category id a string", "sample", "bad_annotation")
    person(20, category_id="person")
    image(21, "HTML page as the image", "sample", "not_an_image", data=HTML)
    image(22, "no annotation: no task applies", "encode", "no_target")
    image(23, "keypoints not numbers", "sample", "bad_keypoints")
    person(23, keypoints=["x"] * 51)
    image(24, "width a string", "sample", "bad_image_record", width="wide")
    image(25, "zero-byte image file", "sample", "empty", data=b"")

    categories = [
        {"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []},
        {"id": 2, "name": "pair", "keypoints": ["a", "b"], "skeleton": [[1, 2]]},
    ]
    document = {"images": images, "annotations": annotations, "categories": categories}
    (root / "person_keypoints.json").write_text(json.dumps(document))
    return cases


# ------------------------------------------------------------------------------ matting


def _matting(root: Path) -> list[Case]:
    images, masks = root / "train" / "blurred_image", root / "train" / "mask"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    cases: list[Case] = []
    yy, xx = np.mgrid[0:40, 0:40]
    alpha = ((yy - 20) ** 2 + (xx - 20) ** 2 < 15**2).astype(np.uint8) * 255

    def pair(stem: str, image: bytes | None, mask: bytes | None, kind, reason=None):
        if image is not None:
            (images / f"{stem}.jpg").write_bytes(image)
        if mask is not None:
            (masks / f"{stem}.png").write_bytes(mask)
        cases.append(Case(f"p3m/{stem}", kind, "composite" if reason else None, reason))

    good_image = encode_jpeg(picture(300, 40, 40))
    pair("m_good1", good_image, encode_png(alpha), "good foreground")
    pair("m_good2", encode_jpeg(picture(301, 40, 40)), encode_png(alpha), "good foreground")
    pair("m_noalpha", good_image, None, "image without a mask", "missing_alpha")
    pair("m_noimage", None, encode_png(alpha), "mask without an image", "missing_image")
    pair("m_size", good_image, encode_png(alpha[:30]), "mask of another size", "size_mismatch")
    pair("m_empty", good_image, encode_png(alpha * 0), "all-zero mask", "empty_alpha")
    pair("m_zero", b"", encode_png(alpha), "zero-byte image", "unreadable_image")
    pair("m_html", good_image, HTML, "HTML saved as the mask", "unreadable_alpha")
    truncated = encode_png(alpha)
    pair("m_trunc", good_image, truncated[: len(truncated) // 2], "truncated mask",
         "unreadable_alpha")  # fmt: skip
    (masks / "m_dir.png").mkdir()
    pair("m_dir", good_image, None, "a folder named like the mask", "unreadable_alpha")
    pair("m_gif", good_image, _image_bytes(alpha, "GIF"), "GIF under .png (a usable mask)")
    return cases


# ---------------------------------------------------------------------------------- all


def build_corpus(root: Path) -> Corpus:
    """Write every source under `root`; the cases and each stage's params."""
    labels = root / "labels"
    cases = _openimages(root / "openimages", labels)
    cases += _sa1b(root / "sa1b")
    cases += _coco(root / "coco")
    foregrounds = _matting(root / "matting" / "p3m")
    runner = RunnerParams(kind="threads", max_workers=1)
    sample = SampleParams(
        seed=1,
        max_pixels=10**6,
        openimages=OpenImagesParams(
            index=str(root / "openimages" / "index.csv"),
            images=str(root / "openimages" / "images"),
            n=1000,
            block_rows=16,
        ),
        sa1b=Sa1bParams(
            tars=(str(root / "sa1b" / "sa_*.tar"),), n=1000, max_member_mb=1, entity=True
        ),
        coco=(
            CocoParams(
                annotations=str(root / "coco" / "person_keypoints.json"),
                images=str(root / "coco" / "images"),
                n=1000,
                block_images=10,
                tasks=("semantic_segmentation", "pose"),
                only_annotated=False,  # every bad image record is selected and quarantined
            ),
        ),
        runner=runner,
    )
    label = LabelParams(
        teacher="ground_truth",
        ground_truth_dir=str(labels),
        sources=("openimages",),
        num_workers=0,
        device="cpu",
        cache_dir=str(root / "cache" / "labels"),
        runner=runner,
    )
    composite = CompositeStageParams(
        seed=2,
        count=4,
        per_unit=2,
        foregrounds=MattingRoots(p3m=str(root / "matting" / "p3m")),
        geometry=CompositeParams(size=48, min_mask_pixels=16, points=PointParams(1, 3)),
        runner=runner,
    )
    encode = EncodeParams(shard_bytes=1 << 20, row_group_bytes=1 << 16, runner=runner)
    return Corpus(root, cases, sample, label, composite, encode, foregrounds)
