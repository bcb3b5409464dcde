from pathlib import Path

import pytest

from dicepipe.config import ConfigError, load_params, load_section, parse
from dicepipe.params.encode import EncodeParams
from dicepipe.params.label import LabelParams
from dicepipe.params.sample import SampleParams

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_load():
    sample = load_params(SampleParams, REPO / "params.yaml")
    assert sample.openimages.n > 0 and sample.sa1b.tars
    encode = load_params(EncodeParams, REPO / "params.yaml")
    assert encode.depth.quantiles == (0.02, 0.98)
    assert isinstance(encode.colors.min_distance, float)
    assert encode.colors.scheme == "layout"  # the one-step demo model; the paper's: random
    assert parse({}, EncodeParams, "encode").colors.scheme == "random"
    with pytest.raises(ConfigError, match=r"encode.colors.scheme: 'rainbow' is not allowed"):
        parse({"colors": {"scheme": "rainbow"}}, EncodeParams, "encode")


def test_defaults_fill_missing_keys():
    params = parse({"seed": 3}, EncodeParams, "encode")
    assert params.seed == 3 and params.points.max == 5


def test_unknown_key_names_section_key_and_allowed():
    with pytest.raises(ConfigError) as error:
        parse({"depth": {"spaec": "depth"}}, EncodeParams, "encode")
    message = str(error.value)
    assert "encode.depth" in message and "'spaec'" in message and "quantiles, space" in message


def test_literal_lists_the_choices():
    with pytest.raises(ConfigError, match=r"encode.depth.space: 'log' is not allowed; choose one"):
        parse({"depth": {"space": "log"}}, EncodeParams, "encode")


def test_type_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"sample.openimages.n: expected int, got '12'"):
        parse({"openimages": {"n": "12"}}, SampleParams, "sample")
    with pytest.raises(ConfigError, match=r"sample.seed: expected int, got True"):
        parse({"seed": True}, SampleParams, "sample")


def test_bounds_and_cross_field_checks():
    with pytest.raises(ConfigError, match=r"encode.points.max: 7 is above the maximum 5"):
        parse({"points": {"max": 7}}, EncodeParams, "encode")
    with pytest.raises(ConfigError, match=r"encode.points: points.min \(4\) must not exceed"):
        parse({"points": {"min": 4, "max": 2}}, EncodeParams, "encode")
    with pytest.raises(ConfigError, match=r"encode.depth: depth.quantiles must satisfy"):
        parse({"depth": {"quantiles": [0.9, 0.1]}}, EncodeParams, "encode")
    with pytest.raises(ConfigError, match=r"expected 2 values, got 3"):
        parse({"depth": {"quantiles": [0.1, 0.5, 0.9]}}, EncodeParams, "encode")


def test_tuple_items_and_task_names_are_checked():
    with pytest.raises(ConfigError, match=r"encode.tasks\[1\]: 'segmentation' is not allowed"):
        parse({"tasks": ["depth", "segmentation"]}, EncodeParams, "encode")
    with pytest.raises(ConfigError, match=r"label.sources: expected a list"):
        parse({"sources": "openimages"}, LabelParams, "label")


def test_missing_section_and_non_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sample: {}\n")
    with pytest.raises(ConfigError, match="section 'label' is missing"):
        load_section(path, "label", LabelParams)
    path.write_text("label: [1, 2]\n")
    with pytest.raises(ConfigError, match="label: expected a mapping, got list"):
        load_section(path, "label", LabelParams)


def test_params_are_frozen():
    params = parse({}, SampleParams, "sample")
    with pytest.raises(AttributeError):
        params.seed = 1  # type: ignore[misc]


def test_an_exponent_without_a_dot_is_a_float_as_written():
    import yaml

    from dicepipe.config import parse
    from dicepipe.params.train import TrainParams

    data = yaml.safe_load("lr: 2e-5")
    assert data == {"lr": "2e-5"}  # YAML 1.1 reads it as a string
    assert parse(data, TrainParams, "train").lr == 2e-5


def test_pose_discs_scale_with_the_short_side_when_a_reference_is_given():
    fixed = parse({}, EncodeParams, "encode").pose
    assert fixed.sizes(72, 96) == fixed.sizes(480, 640) == (4, 3)
    scaled = parse({"pose": {"reference_side": 144}}, EncodeParams, "encode").pose
    assert scaled.sizes(144, 192) == (4, 3)  # the held-out scenes' size: the encoder's pixels
    assert scaled.sizes(72, 96) == (2, 2) and scaled.sizes(480, 640) == (13, 10)
    assert scaled.sizes(10, 10) == (1, 1)  # never below one pixel
    with pytest.raises(ConfigError, match=r"encode.pose: pose.reference_side must be >= 1"):
        parse({"pose": {"reference_side": 0}}, EncodeParams, "encode")
