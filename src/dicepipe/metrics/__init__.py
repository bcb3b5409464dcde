"""Evaluation metrics: pure numpy (and pycocotools for COCO-style scores), no torch."""

from dicepipe.metrics.depth import align_depth, depth_metrics, mean_depth_metrics
from dicepipe.metrics.normals import angular_errors_deg, normal_metrics

__all__ = [
    "align_depth",
    "angular_errors_deg",
    "depth_metrics",
    "mean_depth_metrics",
    "normal_metrics",
]
