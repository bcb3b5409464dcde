import pyarrow as pa
import pytest

from dicepipe.storage import (
    atomic_write,
    digest_of,
    read_fingerprint,
    sha256_file,
    write_json,
    write_parquet,
)


def test_atomic_write_leaves_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, lambda h: h.write(b"old"))

    def broken(handle):
        handle.write(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary left behind


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os
    import stat

    atomic_write(tmp_path / "f", lambda h: h.write(b"x"))
    write_parquet(tmp_path / "t.parquet", pa.table({"x": [1]}))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("f", "t.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask


def test_json_is_byte_stable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    write_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert sha256_file(tmp_path / "a.json") == sha256_file(tmp_path / "b.json")


def test_failed_parquet_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(pa.ArrowException, match="Unsupported compression"):
        write_parquet(tmp_path / "t.parquet", pa.table({"x": [1]}), compression="no-such-codec")
    assert list(tmp_path.iterdir()) == []


def test_parquet_fingerprint_round_trip(tmp_path):
    table = pa.table({"x": [1, 2]})
    write_parquet(tmp_path / "t.parquet", table, fingerprint="abc")
    assert read_fingerprint(tmp_path / "t.parquet") == "abc"
    assert read_fingerprint(tmp_path / "missing.parquet") is None
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert read_fingerprint(tmp_path / "junk.parquet") is None


def test_digest_is_order_free_for_mappings():
    assert digest_of({"a": 1, "b": 2}) == digest_of({"b": 2, "a": 1})
    assert digest_of({"a": 1}) != digest_of({"a": 2})


def test_remove_temporaries_takes_only_the_named_files_leftovers(tmp_path):
    from dicepipe.storage import remove_temporaries

    for relative in (".a.parquet.x1.tmp", "errors/.a.parquet.x2.tmp", ".b.parquet.x3.tmp"):
        (tmp_path / relative).parent.mkdir(exist_ok=True)
        (tmp_path / relative).write_bytes(b"partial")
    (tmp_path / "a.parquet").write_bytes(b"done")
    removed = remove_temporaries(tmp_path, "a.parquet")
    assert sorted(p.name for p in removed) == [".a.parquet.x1.tmp", ".a.parquet.x2.tmp"]
    assert [p.name for p in remove_temporaries(tmp_path)] == [".b.parquet.x3.tmp"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.parquet"]


def test_safetensors_shapes_read_the_header_and_refuse_a_cut_file(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from dicepipe.storage import safetensors_shapes

    path = tmp_path / "w.safetensors"
    save_file({"a": np.zeros((2, 3), np.float32), "b": np.ones(4, np.float16)}, str(path))
    assert safetensors_shapes(path) == {"a": (2, 3), "b": (4,)}
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with pytest.raises(ValueError, match="header describes another size.*truncated"):
        safetensors_shapes(path)
    path.write_bytes(b"\x05")
    with pytest.raises(ValueError, match="1 bytes, truncated or not safetensors"):
        safetensors_shapes(path)
    path.write_bytes((4).to_bytes(8, "little") + b"[1]x")
    with pytest.raises(ValueError, match="unreadable safetensors header"):
        safetensors_shapes(path)


@pytest.fixture(scope="module")
def bucket():
    from tests.objectstore import s3_server

    with s3_server() as store:
        yield store


def test_local_paths_stay_paths_and_urls_become_fsspec_paths():
    from pathlib import Path

    from dicepipe.storage import is_remote, location

    assert location("data/work") == Path("data/work")
    assert location("file:///tmp/x") == Path("/tmp/x")
    remote = location("s3://bucket/work") / "unit.parquet"
    assert is_remote(remote) and str(remote) == "s3://bucket/work/unit.parquet"
    assert remote.stem == "unit" and not is_remote("data/work")


def test_writes_to_an_object_store_are_whole_or_absent(bucket):
    from dicepipe.storage import (
        listing,
        location,
        read_metadata,
        read_table,
        remove_temporaries,
    )

    folder = location(f"{bucket.url}/atomic")
    write_json(folder / "a.json", {"b": 1, "a": 2})
    assert (folder / "a.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    write_parquet(folder / "t.parquet", pa.table({"x": [1, 2, 3]}), fingerprint="f1")
    assert read_fingerprint(folder / "t.parquet") == "f1"
    assert read_metadata(folder / "t.parquet").num_rows == 3
    assert read_table(folder / "t.parquet")["x"].to_pylist() == [1, 2, 3]

    def broken(handle):
        handle.write(b"partial")
        raise RuntimeError("killed")

    atomic_write(folder / "old.bin", lambda h: h.write(b"old"))
    with pytest.raises(RuntimeError):
        atomic_write(folder / "old.bin", broken)
    with pytest.raises(RuntimeError):
        atomic_write(folder / "never.bin", broken)
    assert (folder / "old.bin").read_bytes() == b"old"
    names = [p.name for p in listing(folder, "*")]
    assert names == ["a.json", "old.bin", "t.parquet"]  # no object of the failed writes
    assert sha256_file(folder / "old.bin") == sha256_file_of(b"old")
    assert remove_temporaries(folder) == []
    assert read_fingerprint(folder / "missing.parquet") is None


def test_a_listing_sees_what_another_process_wrote(bucket):
    import subprocess
    import sys

    from dicepipe.storage import listing, location

    folder = location(f"{bucket.url}/listing")
    write_json(folder / "first.json", 1)
    assert [p.name for p in listing(folder, "*.json")] == ["first.json"]
    code = f"from dicepipe.storage import write_json; write_json('{folder}/second.json', 2)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert [p.name for p in listing(folder, "*.json")] == ["first.json", "second.json"]


def sha256_file_of(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
