import base64
import csv
import hashlib
import io
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from dicepipe.imageio import decode_image, encode_jpeg
from dicepipe.params.sample import OpenImagesParams, SampleParams
from dicepipe.sources.common import collect
from dicepipe.sources.openimages import iter_unit, parse_rotation, plan_units
from tests.reliability.craft import (
    focal_entry,
    jpeg_with_exif,
    raw_exif,
    rotated_jpeg,
    text_orientation_jpeg,
)

HEADER = ["ImageID", "Subset", "OriginalURL", "OriginalSize", "OriginalMD5", "Rotation"]


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _picture(seed: int, width: int = 48, height: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 5, yy * 7, (xx + yy) * 2], axis=2) + rng.integers(0, 40, (1, 1, 3))
    return base.astype(np.uint8)


def _csv(rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return text.getvalue().encode()


def _index_row(image_id: str, data: bytes, rotation: str = "0") -> list[str]:
    return [image_id, "train", f"https://x/{image_id}.jpg", str(len(data)), _md5(data), rotation]


def _corpus(root: Path, files: dict[str, bytes], rotation: dict[str, str] | None = None) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for image_id, data in files.items():
        (root / "images" / f"{image_id}.jpg").write_bytes(data)
        rows.append(_index_row(image_id, data, (rotation or {}).get(image_id, "0")))
    (root / "index.csv").write_bytes(_csv(rows))
    return root


def _params(root: Path | str, n: int, **options) -> SampleParams:
    section = OpenImagesParams(
        index=f"{root}/index.csv", images=f"{root}/images", n=n, block_rows=4, **options
    )
    return SampleParams(max_pixels=10**6, openimages=section)


def _run(params: SampleParams) -> tuple[list[dict], dict[str, str]]:
    units = plan_units(params.openimages, params.seed)
    rows, errors, _ = collect(o for unit in units for o in iter_unit(unit, params))
    selected = sum(len(unit.items) for unit in units)
    assert len(rows) + len(errors) == selected  # every selected item is accounted for
    return rows, {key: error.reason for key, error in errors}


def test_same_ids_whether_the_index_is_read_whole_or_in_pieces(tmp_path):
    ids = [f"{i:016x}" for i in range(0, 3000, 7)]
    rows = [_index_row(i, b"x") for i in ids]
    (tmp_path / "whole").mkdir()
    (tmp_path / "whole" / "index.csv").write_bytes(_csv(rows))
    (tmp_path / "parts").mkdir()
    for part, chunk in enumerate((rows[:100], rows[100:101], rows[101:])):
        (tmp_path / "parts" / f"part-{part}.csv").write_bytes(_csv(chunk[::-1]))

    def picked(index: str, block_rows: int) -> list[str]:
        section = OpenImagesParams(index=index, images="img", n=25, block_rows=block_rows)
        units = plan_units(section, seed=4)
        return sorted(image_id for unit in units for image_id, _ in unit.items)

    whole = picked(str(tmp_path / "whole" / "index.csv"), 50)
    assert len(whole) == 25 and len(set(whole)) == 25
    assert picked(str(tmp_path / "parts" / "part-*.csv"), 50) == whole
    assert picked(str(tmp_path / "whole" / "index.csv"), 7) == whole
    units = plan_units(OpenImagesParams(index=str(tmp_path / "parts/*.csv"), n=25), seed=4)
    assert all(unit.name.startswith("openimages-part-") for unit in units)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sample.openimages.index"):
        plan_units(OpenImagesParams(index=str(tmp_path / "nope.csv"), n=3), seed=0)


def _exif_jpeg(rgb: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _cmyk_jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


GOOD = encode_jpeg(_picture(0, 320, 240))
BAD_INPUTS = {
    "truncated_jpeg": (GOOD[: len(GOOD) // 2], "truncated"),
    "zero_byte": (b"", "empty"),
    "text_named_jpg": (b"<html>not an image</html>", "not_an_image"),
    "bomb": (encode_jpeg(np.zeros((1100, 1000, 3), np.uint8)), "too_many_pixels"),
    "cmyk_jpeg": (_cmyk_jpeg(_picture(1)), None),
    "png_16bit": (_png(Image.fromarray(_picture(2)[:, :, 0].astype(np.uint16) * 250)), None),
    "png_palette": (_png(Image.fromarray(_picture(3)).convert("P", colors=8)), None),
    "exif_rotated": (_exif_jpeg(_picture(4), 8), None),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_quarantined_or_canonicalised(tmp_path, case):
    data, reason = BAD_INPUTS[case]
    files = {"00000000000000aa": GOOD, "00000000000000bb": data, "00000000000000cc": GOOD}
    rows, errors = _run(_params(_corpus(tmp_path, files), n=3))
    if reason is None:
        assert errors == {} and len(rows) == 3
        row = next(r for r in rows if r["source_id"] == "00000000000000bb")
        assert row["image"].startswith(b"\x89PNG")
        assert np.array_equal(decode_image(row["image"]).rgb, decode_image(data).rgb)
    else:
        assert errors == {"openimages/00000000000000bb": reason} and len(rows) == 2


def test_index_rows_without_a_usable_image(tmp_path):
    root = _corpus(tmp_path, {"00000000000000aa": GOOD})
    rows = [_index_row(i, GOOD) for i in ("00000000000000aa", "00000000000000ff", "../../etc")]
    (root / "index.csv").write_bytes(_csv(rows))
    (root / "images" / "dir.jpg").mkdir()
    (root / "index.csv").write_bytes(_csv([*rows, _index_row("dir", GOOD)]))
    found, errors = _run(_params(root, n=10))
    assert [r["source_id"] for r in found] == ["00000000000000aa"]
    assert errors == {
        "openimages/00000000000000ff": "missing_file",
        "openimages/../../etc": "bad_id",
        "openimages/dir": "unreadable_file",
    }


def test_rotation_turns_the_image_counterclockwise(tmp_path):
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[0:8, 40:48] = (255, 0, 0)  # top-right marker
    upright = encode_jpeg(rgb, quality=100)
    files = {"0000000000000090": upright, "0000000000000180": upright, "00000000000000e6": upright}
    files["00000000000000ee"] = _exif_jpeg(rgb, 1)
    files["00000000000000e8"] = _exif_jpeg(np.ascontiguousarray(np.rot90(rgb, 1)), 6)
    rotation = {"0000000000000090": "90", "0000000000000180": "180.0", "00000000000000e6": "45"}
    rotation |= {"00000000000000ee": "nan", "00000000000000e8": "90"}
    rows, errors = _run(_params(_corpus(tmp_path, files, rotation), n=5))
    assert errors == {"openimages/00000000000000e6": "bad_rotation"}
    pixels = {r["source_id"]: decode_image(r["image"]).rgb for r in rows}
    turned = pixels["0000000000000090"]
    assert turned.shape == (48, 32, 3) and turned[2, 2, 0] > 200  # marker now top-left
    assert pixels["0000000000000180"][29, 2, 0] > 200  # marker now bottom-left
    assert pixels["00000000000000ee"].shape == (32, 48, 3)  # nan: unknown, not turned
    # EXIF orientation 6 already turns it upright: Rotation is not applied a second time.
    assert pixels["00000000000000e8"].shape == (32, 48, 3)
    assert pixels["00000000000000e8"][2, 45, 0] > 200
    kept = _run(_params(tmp_path, n=5, apply_rotation=False))[0]
    assert all(r["width"] == 48 for r in kept)


def test_parse_rotation():
    assert [parse_rotation(v) for v in ("", "nan", "0", "90", "270.0", None)] == [
        0, 0, 0, 90, 270, 0,
    ]  # fmt: skip


def test_md5_is_checked_only_when_asked(tmp_path):
    files = {"00000000000000aa": GOOD, "00000000000000bb": encode_jpeg(_picture(9))}
    root = _corpus(tmp_path, files)
    (root / "images" / "00000000000000bb.jpg").write_bytes(encode_jpeg(_picture(10)))
    assert _run(_params(root, n=2))[1] == {}
    rows, errors = _run(_params(root, n=2, verify_md5=True))
    assert errors == {"openimages/00000000000000bb": "md5_mismatch"}
    assert [r["source_id"] for r in rows] == ["00000000000000aa"]


@pytest.mark.parametrize("protocol", ["memory", "file"])
def test_index_and_images_from_fsspec_urls(tmp_path, protocol):
    files = {f"{i:016x}": encode_jpeg(_picture(i)) for i in range(6)}
    local = _run(_params(_corpus(tmp_path, files), n=4))[0]
    if protocol == "memory":
        root = "memory://dicepipe-test-openimages"
        fs = fsspec.filesystem("memory")
        fs.pipe(f"{root}/index.csv", (tmp_path / "index.csv").read_bytes())
        for image_id, data in files.items():
            fs.pipe(f"{root}/images/{image_id}.jpg", data)
    else:
        root = f"file://{tmp_path}"
    remote = _run(_params(root, n=4))[0]
    assert [r["image"] for r in remote] == [r["image"] for r in local]
    assert all(r["origin"].startswith(f"{protocol}://") for r in remote)


def test_an_index_with_a_byte_order_mark_is_read(tmp_path):
    root = _corpus(tmp_path, {"00000000000000aa": GOOD, "00000000000000bb": GOOD})
    (root / "index.csv").write_bytes(b"\xef\xbb\xbf" + (root / "index.csv").read_bytes())
    rows, errors = _run(_params(root, n=2))
    assert errors == {} and len(rows) == 2


def test_malformed_index_rows_are_quarantined_as_such(tmp_path):
    root = _corpus(tmp_path, {"00000000000000aa": GOOD, "00000000000000bb": GOOD})
    good = _csv([_index_row("00000000000000aa", GOOD)])
    lines = [
        b"00000000000000bb,train\n",  # too few fields (its file exists)
        b"00000000000000cc,train,u,1,m,0,surplus\n",  # too many fields
        b",train,u,1,m,0\n",  # no ImageID
        b"00000000000000\xffdd,train,u,1,m,0\n",  # not UTF-8
    ]
    (root / "index.csv").write_bytes(good + b"".join(lines))
    rows, errors = _run(_params(root, n=10))
    assert [r["source_id"] for r in rows] == ["00000000000000aa"]
    assert errors == {
        "openimages/00000000000000bb": "bad_index_row",
        "openimages/00000000000000cc": "bad_index_row",
        "openimages/index.csv:row-3": "bad_index_row",
        "openimages/00000000000000\ufffddd": "bad_id",
    }


def test_a_non_integer_exif_orientation_does_not_stop_the_unit(tmp_path):
    files = {"00000000000000aa": GOOD, "00000000000000bb": text_orientation_jpeg(3)}
    rows, errors = _run(_params(_corpus(tmp_path, files), n=2))
    assert errors == {} and len(rows) == 2
    row = next(r for r in rows if r["source_id"] == "00000000000000bb")
    assert row["image"].startswith(b"\x89PNG") and (row["width"], row["height"]) == (32, 24)


def test_the_exif_focal_length_survives_re_encoding(tmp_path):
    rotated = rotated_jpeg(5, orientation=6, f35=50)  # re-encoded as PNG: no EXIF left
    plain = jpeg_with_exif(_picture(6, 40, 30), raw_exif([], [focal_entry(35)]))  # kept as is
    files = {"00000000000000aa": rotated, "00000000000000bb": plain, "00000000000000cc": GOOD}
    rows, errors = _run(_params(_corpus(tmp_path, files), n=3))
    focal = {r["source_id"]: r["focal_px"] for r in rows}
    assert errors == {} and focal["00000000000000cc"] is None
    assert focal["00000000000000aa"] == pytest.approx(50 * np.hypot(24, 32) / np.hypot(36, 24))
    assert focal["00000000000000bb"] == pytest.approx(35 * np.hypot(40, 30) / np.hypot(36, 24))
    row = next(r for r in rows if r["source_id"] == "00000000000000aa")
    assert row["image"].startswith(b"\x89PNG")
    assert not Image.open(io.BytesIO(row["image"])).getexif()  # the EXIF is gone: hence the row
