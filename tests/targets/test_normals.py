import numpy as np
import pytest

from dicepipe.targets.normals import decode_normals, encode_normals


def _unit_normals(seed: int, shape: tuple[int, int] = (32, 40)) -> np.ndarray:
    n = np.random.default_rng(seed).normal(size=(*shape, 3))
    return n / np.linalg.norm(n, axis=2, keepdims=True)


def test_known_values():
    n = np.array([[[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert encode_normals(n).tolist() == [[[128, 128, 255], [0, 128, 128], [128, 255, 128]]]


def test_round_trip_within_half_a_degree():
    n = _unit_normals(0)
    back = decode_normals(encode_normals(n))
    assert back.dtype == np.float32
    assert np.allclose(np.linalg.norm(back, axis=2), 1.0, atol=1e-5)
    cos = np.clip((back.astype(np.float64) * n).sum(axis=2), -1, 1)
    assert np.degrees(np.arccos(cos)).max() < 0.5


def test_nan_encodes_as_grey_and_decodes_as_nan():
    n = _unit_normals(1, (4, 4))
    n[1, 2, 0] = np.nan
    target = encode_normals(n)
    assert target[1, 2].tolist() == [128, 128, 128]
    back = decode_normals(target)
    assert np.isnan(back[1, 2]).all()
    assert np.isfinite(np.delete(back.reshape(-1, 3), 6, axis=0)).all()


def test_deterministic_bytes():
    assert encode_normals(_unit_normals(2)).tobytes() == encode_normals(_unit_normals(2)).tobytes()


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        encode_normals(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="float"):
        encode_normals(np.zeros((4, 4, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="uint8"):
        decode_normals(np.zeros((4, 4, 3)))
