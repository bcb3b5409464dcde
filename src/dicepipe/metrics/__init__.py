"""Evaluation metrics: pure numpy (and pycocotools for COCO-style scores), no torch.

depth (Marigold/GenPercept), depth_benchmarks (their ranges and crops), normals (DSINE pooled
and Marigold per image), segmentation (SAM point-prompted mIoU), instances (class-agnostic COCO
mask AP/AR), keypoints (COCO keypoint AP); each module names its source protocol.
"""

from dicepipe.metrics.depth import align_depth, depth_metrics, mean_depth_metrics
from dicepipe.metrics.depth_benchmarks import DEPTH_BENCHMARKS, benchmark_depth_metrics
from dicepipe.metrics.instances import mask_ap
from dicepipe.metrics.keypoints import keypoint_ap
from dicepipe.metrics.normals import angular_errors_deg, normal_benchmark_metrics, normal_metrics
from dicepipe.metrics.segmentation import mask_iou, point_prompt_miou

__all__ = [
    "DEPTH_BENCHMARKS",
    "align_depth",
    "angular_errors_deg",
    "benchmark_depth_metrics",
    "depth_metrics",
    "keypoint_ap",
    "mask_ap",
    "mask_iou",
    "mean_depth_metrics",
    "normal_benchmark_metrics",
    "normal_metrics",
    "point_prompt_miou",
]
