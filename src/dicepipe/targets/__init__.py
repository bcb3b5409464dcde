"""Task targets: encoders (raw label -> RGB image) and decoders (RGB image -> label).

Only numpy is imported here; OpenCV, SciPy and scikit-learn load inside the functions that
need them, so `import dicepipe.targets` stays fast.
"""

from dicepipe.targets.colors import instance_colors
from dicepipe.targets.decode_masks import decode_instance_masks
from dicepipe.targets.decode_pose import decode_keypoints, keypoints_to_coco
from dicepipe.targets.depth import decode_depth, encode_depth
from dicepipe.targets.normals import decode_normals, encode_normals
from dicepipe.targets.pose import COCO_KEYPOINT_NAMES, COCO_SKELETON, LIMB_COLORS, encode_pose
from dicepipe.targets.segmentation import encode_instances, encode_point_mask
from dicepipe.targets.thresholds import MaskDecodeParams, PoseDecodeParams

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "LIMB_COLORS",
    "MaskDecodeParams",
    "PoseDecodeParams",
    "decode_depth",
    "decode_instance_masks",
    "decode_keypoints",
    "decode_normals",
    "encode_depth",
    "encode_instances",
    "encode_normals",
    "encode_point_mask",
    "encode_pose",
    "instance_colors",
    "keypoints_to_coco",
]
