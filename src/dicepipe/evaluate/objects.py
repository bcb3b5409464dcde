"""Object-level scorers: point-prompted segmentation, entity segmentation and pose.

- point segmentation (SAM protocol, DICEPTION Fig. 3-4): the `max_prompted_masks` largest
  non-crowd masks of an image (of at least `min_mask_area` pixels) are prompted with
  1 and 5 points (`point_counts`), a prefix of one `sampling.prompt_points` draw seeded per
  (benchmark, image, mask); IoU of the decoded mask, mIoU per number of points;
- entity segmentation: Algorithm 2's decoded masks (scored by size rank, largest first)
  against every instance mask, class-agnostic COCOeval segm AP / AR;
- pose: Algorithm 1's keypoints (typed by the nearest ground-truth keypoint, as the paper
  does), grouped per person, person score = found / labelled keypoints; COCOeval keypoint AP.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dicepipe.evaluate.benchmarks.sample import BenchmarkSample
from dicepipe.evaluate.scoring import Query, Scorer
from dicepipe.metrics.segmentation import mask_iou
from dicepipe.sampling import item_rng, prompt_points


class PointScorer(Scorer):
    """IoU of point-prompted masks with 1 and 5 points."""

    task = "point_segmentation"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ious: dict[str, list[tuple[int, float]]] = {"model": [], "baseline": []}

    def prompted(self, sample: BenchmarkSample) -> list[int]:
        """Indices of the masks that get prompted, largest first."""
        if sample.instances is None:
            return []
        areas = sample.instances.masks.reshape(len(sample.instances.masks), -1).sum(axis=1)
        ok = (areas >= self.params.min_mask_area) & ~sample.instances.iscrowd
        order = [int(i) for i in np.argsort(-areas, kind="stable") if ok[i]]
        return order[: self.params.max_prompted_masks]

    def applies(self, sample: BenchmarkSample) -> bool:
        """A sample with at least one mask large enough to prompt."""
        return bool(self.prompted(sample))

    def queries(self, index: int, sample: BenchmarkSample) -> list[Query]:
        """One query per prompted mask and number of points (prefixes of one draw)."""
        assert sample.instances is not None
        counts = sorted(set(self.params.point_counts))
        key = f"{self.benchmark}/{sample.name}"
        found = []
        for obj in self.prompted(sample):
            rng = item_rng(self.params.sampling.seed, key, f"mask{obj}")
            points = prompt_points(sample.instances.masks[obj], max(counts), rng)
            found += [Query(index, self.task, points[:k], obj, k) for k in counts]
        return found

    def add(self, sample: BenchmarkSample, query: Query, prediction: np.ndarray) -> list[dict]:
        """IoU of the decoded mask and of the disc baseline with the prompted mask."""
        from dicepipe.targets.segmentation import decode_point_mask

        assert sample.instances is not None and query.points is not None
        truth = sample.instances.masks[query.obj]
        shape = truth.shape
        decoded = decode_point_mask(prediction)
        self.empty.append(not decoded.any())
        figures = {
            "model": mask_iou(decoded, truth),
            "baseline": mask_iou(self.baselines.point_mask(query.points, shape), truth),
        }
        for system, iou in figures.items():
            self.ious[system].append((query.k, iou))
        return self.rows(sample, query, {"iou": figures["model"]}, {"iou": figures["baseline"]})

    def target(self, sample: BenchmarkSample, query: Query) -> np.ndarray:
        """The prompted mask, white on black."""
        from dicepipe.targets.segmentation import point_mask_target

        assert sample.instances is not None
        return point_mask_target(sample.instances.masks[query.obj])

    def summary(self) -> dict[str, dict[str, Any]]:
        """mIoU overall and per number of points, per system."""
        return {system: _miou(pairs) for system, pairs in self.ious.items()}


def _miou(pairs: list[tuple[int, float]]) -> dict[str, float]:
    counts = np.array([k for k, _ in pairs])
    ious = np.array([iou for _, iou in pairs])
    result: dict[str, float] = {"miou": float(ious.mean()), "count": int(ious.size)}
    for k in sorted(set(counts.tolist())):
        result[f"miou_{k}pt"] = float(ious[counts == k].mean())
        result[f"count_{k}pt"] = int((counts == k).sum())
    return result


class EntityScorer(Scorer):
    """Class-agnostic mask AP / AR of decoded entity masks."""

    task = "entity_segmentation"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.gt: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.pred: dict[str, list[tuple[list[np.ndarray], list[float]]]] = {
            "model": [],
            "baseline": [],
        }

    def applies(self, sample: BenchmarkSample) -> bool:
        """A sample with instance masks."""
        return sample.instances is not None and len(sample.instances.masks) > 0

    def add(self, sample: BenchmarkSample, query: Query, prediction: np.ndarray) -> list[dict]:
        """Decode the masks (Algorithm 2); per image: masks found and mean best IoU."""
        from dicepipe.targets.decode_masks import decode_instance_masks

        truth = sample.instances
        assert truth is not None
        masks = decode_instance_masks(prediction, self.params.masks)
        self.empty.append(len(masks) == 0)
        scores = [1.0 - i / (len(masks) + 1) for i in range(len(masks))]
        self.gt.append((truth.masks, truth.iscrowd, truth.areas))
        outputs = {
            "model": (masks, scores),
            "baseline": self.baselines.entity_masks(truth.masks.shape[1:]),
        }
        figures = {}
        for system, (found, found_scores) in outputs.items():
            self.pred[system].append((found, found_scores))
            figures[system] = {
                "n_masks": len(found),
                "mean_best_iou": _mean_best_iou(found, truth.masks),
            }
        return self.rows(sample, query, figures["model"], figures["baseline"])

    def target(self, sample: BenchmarkSample, query: Query) -> np.ndarray:
        """The instances in the colours the model learnt (`evaluate.entity_colors`)."""
        from dicepipe.targets.segmentation import encode_instances

        assert sample.instances is not None
        masks = list(sample.instances.masks)
        scheme = self.params.entity_colors
        return encode_instances(masks, np.random.default_rng(0), scheme=scheme)[0]

    def summary(self) -> dict[str, dict[str, Any]]:
        """COCO segm AP / AR (class-agnostic) per system."""
        from dicepipe.metrics.instances import mask_ap

        sizes = [masks.shape[1:] for masks, _, _ in self.gt]
        result = {}
        for system, predictions in self.pred.items():
            figures = mask_ap(
                [masks for masks, _ in predictions],
                [scores for _, scores in predictions],
                [masks for masks, _, _ in self.gt],
                sizes,
                gt_iscrowd=[crowd for _, crowd, _ in self.gt],
                gt_areas=[areas for _, _, areas in self.gt],
            )
            result[system] = {**figures, "n_images": len(sizes)}
        return result


def _mean_best_iou(found: list[np.ndarray], truth: np.ndarray) -> float:
    """Mean over ground-truth masks of the best IoU any found mask reaches (0 without any)."""
    if not len(truth):
        return 0.0
    best = [max((mask_iou(mask, gt) for mask in found), default=0.0) for gt in truth if gt.any()]
    return float(np.mean(best)) if best else 0.0


class PoseScorer(Scorer):
    """COCO keypoint AP of decoded keypoints."""

    task = "pose"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.gt: list[Any] = []
        self.pred: list[tuple[np.ndarray, list[float]]] = []

    def applies(self, sample: BenchmarkSample) -> bool:
        """A sample whose people are annotated (possibly nobody)."""
        return sample.people is not None

    def add(self, sample: BenchmarkSample, query: Query, prediction: np.ndarray) -> list[dict]:
        """Decode keypoints (Algorithm 1) and group them per person; the baseline finds none."""
        from dicepipe.targets.decode_pose import decode_keypoints, keypoints_to_coco

        people = sample.people
        assert people is not None
        truth = people.keypoints
        labelled = (truth[..., 2] > 0).sum(axis=1)
        found = np.zeros((0, 17, 3))
        if labelled.sum():
            decoded = decode_keypoints(prediction, truth, self.params.keypoints)
            grouped = keypoints_to_coco(decoded, truth).astype(np.float64)
            hits = (grouped[..., 2] > 0).sum(axis=1)
            keep = hits > 0
            found = grouped[keep]
            self.empty.append(not keep.any())
            scores = (hits[keep] / np.maximum(labelled[keep], 1)).tolist()
        else:
            scores = []
        self.gt.append(people)
        self.pred.append((found, scores))
        model = {"keypoints_found": int((found[..., 2] > 0).sum()), "labelled": int(labelled.sum())}
        baseline = {"keypoints_found": 0, "labelled": int(labelled.sum())}
        return self.rows(sample, query, model, baseline)

    def target(self, sample: BenchmarkSample, query: Query) -> np.ndarray:
        """The people's keypoints and limbs drawn as a pose target."""
        from dicepipe.targets.pose import encode_pose

        assert sample.people is not None
        height, width = sample.rgb.shape[:2]
        return encode_pose(sample.people.keypoints.reshape(-1, 17, 3), height, width)

    def summary(self) -> dict[str, dict[str, Any]]:
        """COCO keypoint AP / AR per system; without any labelled person, counts only."""
        from dicepipe.metrics.keypoints import keypoint_ap

        n_people = int(sum(((p.keypoints[..., 2] > 0).sum(axis=1) > 0).sum() for p in self.gt))
        counts = {"n_images": len(self.gt), "n_people": n_people}
        if not n_people:
            return {"model": dict(counts), "baseline": dict(counts)}
        empty = [(np.zeros((0, 17, 3)), [])] * len(self.gt)
        result = {}
        for system, predictions in (("model", self.pred), ("baseline", empty)):
            figures = keypoint_ap(
                [kps for kps, _ in predictions],
                [scores for _, scores in predictions],
                [p.keypoints for p in self.gt],
                [p.areas for p in self.gt],
                gt_boxes=[p.boxes for p in self.gt],
                gt_iscrowd=[p.iscrowd for p in self.gt],
            )
            result[system] = {**figures, **counts}
        return result
