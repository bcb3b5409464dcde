"""`dicepipe audit`: score the configured teacher on synthetic scenes with exact labels."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from dicepipe.params.label import LabelParams
from dicepipe.sources.synthetic.corpus import label_bytes
from dicepipe.storage import atomic_write
from dicepipe.teachers.audit import audit_teacher, render_audit_scenes
from dicepipe.teachers.factory import build_model_teacher
from dicepipe.teachers.ground_truth import GroundTruthTeacher

AUDIT_SOURCE = "audit"  # the source name audit_teacher gives its inputs


def run_audit(
    params: LabelParams,
    teacher: Literal["ground_truth", "depth_pro"],
    scenes: int = 8,
    width: int = 160,
    height: int = 120,
    first_seed: int = 10_000,
) -> dict[str, Any]:
    """Audit the exact-label teacher (through its real file reader) or the model teacher.

    The scenes are rendered with seeds the sample corpus does not use; their exact labels are
    written in the ground-truth layout to a temporary folder, so the exact teacher reads them
    exactly as it reads the corpus.
    """

    rendered = render_audit_scenes(range(first_seed, first_seed + scenes), width, height)
    with tempfile.TemporaryDirectory(prefix="dicepipe-audit-") as tmp:
        for index, scene in enumerate(rendered):
            data = label_bytes(scene)
            path = Path(tmp) / AUDIT_SOURCE / f"{index}.npz"
            atomic_write(path, lambda handle, data=data: handle.write(data))
        if teacher == "ground_truth":
            labeller = GroundTruthTeacher(tmp)
        else:
            labeller = build_model_teacher(params, cached=False)
        return audit_teacher(labeller, rendered, batch_size=params.batch_size)


def format_audit(report: dict[str, Any]) -> str:
    """One readable block of the audit's figures."""
    depth, normals, focal = report["depth"], report["normals"], report["focal"]
    lines = [f"teacher  {report['teacher']}  ({report['n_images']} synthetic scenes)"]
    if depth:
        lines.append(
            f"  depth    AbsRel {depth['absrel']:.4f}  delta1 {depth['delta1']:.4f}"
            f"  RMSE {depth['rmse']:.4f}  (after scale-and-shift alignment)"
        )
    if report.get("depth_metric"):
        lines.append(f"  metric   AbsRel {report['depth_metric']['absrel']:.4f}  (no alignment)")
    if focal:
        lines.append(f"  focal    mean relative error {focal['mean_relative_error']:.2%}")
    if normals:
        lines.append(
            f"  normals  mean {normals['mean']:.2f} deg  median {normals['median']:.2f} deg"
            f"  <11.25 {normals['pct_11_25']:.1f}%"
        )
    return "\n".join(lines)
