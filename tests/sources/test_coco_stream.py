import json
import random
import time

import pytest

from dicepipe.sources.coco_stream import JsonSanitizer, stream_coco


def _reference_depth(text: str) -> int:
    """The deepest nesting of a JSON text, character by character."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _random_json(rng: random.Random, depth: int = 0):
    if depth > 6 or rng.random() < 0.3:
        return rng.choice(['a"b', "x\\", '\\\\"[{', "}]", 1, 2.5, None, '\\"', "[[["])
    if rng.random() < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["k", "[", '"{', "\\"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _feed(sanitizer: JsonSanitizer, data: bytes, rng: random.Random) -> bytes:
    out, position = [], 0
    while position < len(data):
        size = rng.randint(1, 5)  # chunk borders fall inside strings, tokens and escape runs
        out.append(sanitizer.feed(data[position : position + size]))
        position += size
    return b"".join(out) + sanitizer.finish()


def test_the_sanitizer_matches_a_character_by_character_count():
    rng = random.Random(1)
    for _ in range(300):
        value = _random_json(rng)
        data = json.dumps(value).encode()
        deepest = _reference_depth(data.decode())
        assert json.loads(_feed(JsonSanitizer(limit=deepest), data, rng)) == value
        if deepest:
            with pytest.raises(ValueError, match=f"more than {deepest - 1} levels"):
                _feed(JsonSanitizer(limit=deepest - 1), data, rng)


def test_non_finite_numbers_become_null_outside_strings():
    value = {"a": [float("nan"), 1.5, float("inf"), float("-inf")], "NaN": "-Infinity NaN"}
    data = json.dumps(value).encode()
    for seed in range(20):
        cleaned = json.loads(_feed(JsonSanitizer(), data, random.Random(seed)))
        assert cleaned == {"a": [None, 1.5, None, None], "NaN": "-Infinity NaN"}


def test_records_stream_one_at_a_time_with_the_file_digest(tmp_path):
    document = {
        "info": {"year": 2026},
        "annotations": [{"id": 1, "image_id": 7, "segmentation": [[1.5, 2.25, 3, 4, 5, 6]]}],
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(document))
    seen: dict[str, list] = {"images": [], "annotations": []}
    digest, counts = stream_coco(
        str(path), {name: lambda n, r, name=name: seen[name].append((n, r)) for name in seen}
    )
    import hashlib

    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert counts == {"images": 2, "annotations": 1}
    assert seen["images"] == [(0, document["images"][0]), (1, document["images"][1])]
    ((_, annotation),) = seen["annotations"]
    polygon = annotation["segmentation"][0]
    assert polygon == [1.5, 2.25, 3, 4, 5, 6] and type(polygon[0]) is float  # not Decimal


def test_broken_or_hostile_files_are_value_errors_naming_them(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(ValueError, match="deep.json: JSON nested more than 32 levels deep"):
        stream_coco(str(deep), {"images": lambda n, r: None})
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [{"id": 1}, ')
    with pytest.raises(ValueError, match="broken.json: not a COCO annotations file"):
        stream_coco(str(broken), {"images": lambda n, r: None})


def test_non_finite_tokens_cut_anywhere_become_null():
    data = b'{"v": [-Infinity, NaN, Infinity, "NaN\\\\", 1e5], "w": "-Infinity"}'
    expected = {"v": [None, None, None, "NaN\\", 1e5], "w": "-Infinity"}
    for cut in range(len(data) + 1):
        sanitizer = JsonSanitizer()
        out = sanitizer.feed(data[:cut]) + sanitizer.feed(data[cut:]) + sanitizer.finish()
        assert json.loads(out) == expected, cut


def test_bytes_inside_an_open_string_are_passed_on_at_once():
    sanitizer = JsonSanitizer()
    head = b'{"a": "' + b'x\\"[' * 1000
    assert sanitizer.feed(head) == head and sanitizer.carry == b"" and sanitizer.in_string
    assert sanitizer.feed(b'"}') + sanitizer.finish() == b'"}' and not sanitizer.in_string
    assert sanitizer.feed(b'{"b": [1, -Infin') == b'{"b": [1, '  # a token may be cut: held
    assert sanitizer.carry == b"-Infin"


def test_a_32_mb_string_value_streams_in_linear_time(tmp_path):
    value = ('ab\\"[{c' + "x" * 121) * (1 << 18)  # 32 MiB with escapes and brackets
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": value}], "annotations": []}))
    names: list[str] = []
    started = time.perf_counter()
    stream_coco(str(path), {"images": lambda n, r: names.append(r["file_name"])})
    elapsed = time.perf_counter() - started
    assert names == [value]
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # quadratic scanning took over 30 s here
