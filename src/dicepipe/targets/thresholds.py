"""Thresholds of the target decoders (DICEPTION Algorithms 1 and 2): `evaluate.masks` and
`evaluate.keypoints` in params.yaml, kept beside the decoders that read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MaskDecodeParams:
    """Thresholds of the mask decoder (paper symbols in brackets)."""

    #: [sigma] a pixel belongs to a centre within this Euclidean RGB distance; keep it at
    #: most half the minimal distance between instance colours.
    rgb_tolerance: float = 30.0
    #: a pixel farther than rgb_tolerance from every centre joins its nearest centre's mask
    #: when within this distance (recovers edges blurred by JPEG chroma subsampling);
    #: None: only rgb_tolerance, as in the paper.
    assign_tolerance: float | None = 60.0
    #: cluster centres closer than this to (0, 0, 0) are background and yield no mask.
    black_tolerance: float = 40.0
    #: [xi] masks with fewer pixels after morphology are dropped; also the smallest colour
    #: mass the split refinement separates.
    min_area: int = 32
    #: [k] side of the square kernel of the opening then closing; <= 1 disables morphology.
    kernel_size: int = 3
    #: [eta] masks with more connected components (8-connected) are dropped as fragmented.
    max_components: int = 8
    #: [beta] of two masks with IoU >= this, only the larger is kept.
    duplicate_iou: float = 0.8
    #: pixels this close to a centre are certain: morphology never removes them from that
    #: colour's mask, and hole filling and closing never add them to another colour's mask
    #: (so a small instance inside a large one, or black background in a concave corner, is
    #: not swallowed). None disables the protection (paper).
    keep_distance: float | None = 15.0
    #: Gaussian sigma (in bins) smoothing each 256-bin channel histogram before peak finding.
    histogram_sigma: float = 1.0
    #: a histogram peak needs a prominence of at least this fraction of the pixel count.
    peak_prominence: float = 0.001
    #: upper bound on the number of KMeans clusters, refinement included.
    max_clusters: int = 64
    #: two colour groups closer than this are never split apart by the refinement.
    split_distance: float = 40.0
    #: width of the colour bins KMeans clusters (each bin sits at its pixels' mean colour).
    quantization: int = 8
    #: KMeans restarts of the first fit (random_state comes from the seed).
    n_init: int = 4

    def __post_init__(self) -> None:
        """Reject values that make the decoder meaningless."""
        if self.rgb_tolerance <= 0 or self.black_tolerance < 0:
            raise ValueError("rgb_tolerance must be > 0 and black_tolerance >= 0")
        if self.min_area < 1 or self.max_components < 1 or self.max_clusters < 1:
            raise ValueError("min_area, max_components and max_clusters must be >= 1")
        if not 0 < self.duplicate_iou <= 1:
            raise ValueError("duplicate_iou must be in (0, 1]")
        if not 2 <= self.quantization <= 128 or self.n_init < 1:
            raise ValueError("quantization must be in [2, 128] and n_init >= 1")


@dataclass(frozen=True)
class PoseDecodeParams:
    """Thresholds of the keypoint decoder (paper symbols in brackets)."""

    #: [sigma] a pixel is red when within this Euclidean RGB distance of (255, 0, 0); the
    #: limb colours of `encode_pose` are all >= 170 away.
    rgb_tolerance: float = 70.0
    #: red components with fewer pixels are noise.
    min_area: int = 4
    #: area / (pi * R**2), R the largest centroid-to-pixel distance, at or above which a
    #: component is a single disc (a digital disc scores about 1, two touching discs 0.43).
    circularity: float = 0.8
    #: disc radius of the encoder, for the expected disc area when no disc is circular.
    radius: float = 4.0
    #: at most this many discs are split out of one component.
    max_discs: int = 17
    #: [xi] a centre is kept when its nearest GT keypoint is closer than this (pixels).
    distance_threshold: float = 10.0

    def __post_init__(self) -> None:
        """Reject values that make the decoder meaningless."""
        if self.rgb_tolerance <= 0 or self.radius <= 0 or self.distance_threshold <= 0:
            raise ValueError("rgb_tolerance, radius and distance_threshold must be > 0")
        if self.min_area < 1 or self.max_discs < 1:
            raise ValueError("min_area and max_discs must be >= 1")
