"""The teacher audit against exact labels of synthetic scenes."""

import numpy as np
import pytest

from dicepipe.teachers.audit import audit_teacher, render_audit_scenes
from dicepipe.teachers.base import Label
from dicepipe.teachers.normals import GeometryNormalsTeacher


@pytest.fixture(scope="module")
def scenes():
    return render_audit_scenes([0, 1, 2], 64, 48)


class _Oracle:
    """Returns each scene's exact depth and focal (optionally scaled/shifted), no normals."""

    identity = "oracle"

    def __init__(self, scenes, scale=1.0, shift=0.0):
        self.by_key = {f"audit-{i}": s for i, s in enumerate(scenes)}
        self.scale, self.shift = scale, shift

    def label(self, batch):
        out = []
        for item in batch:
            s = self.by_key[item.key]
            depth = (self.scale * s.depth + self.shift).astype(np.float32)
            out.append(Label(item.key, depth, s.focal_px * self.scale, None, self.identity))
        return out


def test_exact_teacher_scores_perfectly(scenes):
    report = audit_teacher(_Oracle(scenes), scenes, batch_size=2)
    assert report["teacher"] == "oracle" and report["n_images"] == 3
    assert report["depth"]["absrel"] == pytest.approx(0.0, abs=1e-6)
    assert report["depth"]["delta1"] == 1.0 and report["depth_metric"]["absrel"] < 1e-6
    assert report["focal"]["max_relative_error"] == 0.0
    assert report["normals"] is None


def test_alignment_removes_scale_and_shift_but_metric_scores_see_it(scenes):
    report = audit_teacher(_Oracle(scenes, scale=2.0, shift=0.5), scenes)
    assert report["depth"]["absrel"] == pytest.approx(0.0, abs=1e-5)
    assert report["depth_metric"]["absrel"] > 1.0
    assert report["focal"]["mean_relative_error"] == pytest.approx(1.0)


def test_geometry_normals_of_exact_depth_are_close(scenes):
    report = audit_teacher(GeometryNormalsTeacher(_Oracle(scenes), device="cpu"), scenes)
    assert report["normals"]["median"] < 1.0 and report["normals"]["pct_11_25"] > 90.0


def test_empty_audit_is_an_error():
    with pytest.raises(ValueError, match="at least one scene"):
        audit_teacher(_Oracle([]), [])
