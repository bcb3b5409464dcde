import csv
import io

import pytest

from dicepipe.sampling import bottom_k_items
from dicepipe.sources import openimages_index
from dicepipe.sources.openimages_index import iter_index, select_rows

HEADER = ["ImageID", "Subset", "OriginalURL", "OriginalMD5", "Rotation"]


def _index(path, ids, rotation="90.0"):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows([i, "train", f"https://x/{i}.jpg", f"md5-{i}", rotation] for i in ids)
    path.write_text(text.getvalue())
    return str(path)


def _reference(files, n, seed):
    """What planning selected before: bottom_k_items over iter_index, row by row."""
    rows = (
        (f"openimages/{row['ImageID']}", (part, number, row["ImageID"]))
        for part, url in enumerate(files)
        for number, row in iter_index(url)
    )
    return [payload for _, payload in bottom_k_items(rows, n, seed)]


def _selected(table):
    return list(zip(*(table[c].to_pylist() for c in ("part", "number", "ImageID")), strict=True))


@pytest.mark.parametrize("seed", [0, 7])
def test_arrow_selection_equals_the_row_by_row_bottom_k(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(openimages_index, "MERGE_ROWS", 50)  # many cuts back to n
    monkeypatch.setattr(openimages_index, "BLOCK_BYTES", 4096)  # many batches
    ids = [f"{i:016x}" for i in range(900)]
    first = _index(tmp_path / "a.csv", ids[:500] + ids[100:120] + [""])  # repeats, no id
    second = _index(tmp_path / "b.csv", ids[400:])  # repeats across files
    files = [first, second]
    monkeypatch.setattr(openimages_index, "_file_by_rows", _must_not_fall_back)
    table = select_rows(files, 300, seed, ("Rotation",))
    assert _selected(table) == _reference(files, 300, seed)
    assert set(table["Rotation"].to_pylist()) == {"90.0"}
    problems = [p for p in table["problem"].to_pylist() if p is not None]
    assert problems in ([], ["a.csv row 520: empty ImageID"])


def _must_not_fall_back(*args):
    raise AssertionError("a clean index must be read by pyarrow")


def test_a_damaged_file_is_read_row_by_row_with_the_same_selection(tmp_path):
    clean = _index(tmp_path / "a.csv", [f"{i:016x}" for i in range(200)])
    damaged = tmp_path / "b.csv"
    damaged.write_bytes(
        b"ImageID,Subset\n"
        + b"".join(b"%016x,train\n" % i for i in range(150, 260))
        + b"00000000000000\xffdd,train\nshort\n000000000000ffff,train,surplus\n"
    )
    files = [clean, str(damaged)]
    table = select_rows(files, 400, 3, ("Rotation", "OriginalMD5"))
    assert _selected(table) == _reference(files, 400, 3)
    problems = dict(zip(table["ImageID"].to_pylist(), table["problem"].to_pylist(), strict=True))
    assert problems["000000000000ffff"] == "b.csv row 112: 3 fields, the header has 2"
    assert problems["00000000000000\ufffddd"] is None  # its id is refused when read
    assert table["OriginalMD5"].to_pylist()[-1] in ("", "md5-" + table["ImageID"][-1].as_py())


def test_a_file_without_image_ids_is_a_clear_error(tmp_path):
    path = tmp_path / "index.csv"
    path.write_text("Subset,OriginalURL\ntrain,u\n")
    with pytest.raises(ValueError, match="not an OpenImages index"):
        select_rows([str(path)], 5, 0, ())
