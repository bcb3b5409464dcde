"""The task registry: one frozen spec per task, and every list of tasks derives from it.

Adding a task is one `TaskSpec` here plus its example builder (`pipeline.examples`) when the
encode stage makes it, or its pair maker when a stage synthesises it (as `finetune` does for
low-light enhancement). Decoders are named by dotted path, so this module imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """What defines one task of the generalist."""

    name: str
    prompt: str  # the task prompt the model is conditioned on (DICEPTION's "image2depth"...)
    target: str  # how the target is drawn as an RGB image
    decoder: str  # "module:function" turning a predicted RGB target back into the output
    weight: float  # default mix weight of the training loader (DICEPTION: 15/15/20/20/20/20)
    sources: tuple[str, ...]  # which inputs feed it
    in_shards: bool = True  # made by the encode stage (False: made where it is trained)


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        "depth",
        "image2depth",
        "disparity between the 2%/98% depth quantiles, normalised, 3 equal channels",
        "dicepipe.targets.depth:decode_depth",
        15.0,
        ("openimages (Depth Pro)", "synthetic (exact)"),
    ),
    TaskSpec(
        "normal",
        "image2normal",
        "(n + 1) / 2 * 255, camera frame: X right, Y up, Z toward the viewer",
        "dicepipe.targets.normals:decode_normals",
        15.0,
        ("openimages (Depth Pro + geometry or Marigold)", "synthetic (exact)"),
    ),
    TaskSpec(
        "point_segmentation",
        "image2segmentation",
        "the prompted mask white on black; 1-5 points in the `points` column",
        "dicepipe.targets.segmentation:decode_point_mask",
        20.0,
        ("sa1b", "composites (p3m, am2k, aim500)", "synthetic (exact)"),
    ),
    TaskSpec(
        "entity_segmentation",
        "image2entity",
        "a seeded random colour per instance on black; colour table in `meta`",
        "dicepipe.targets.decode_masks:decode_instance_masks",
        20.0,
        ("entityv2 (COCO-format, class-agnostic)", "sa1b (sample.sa1b.entity)", "synthetic"),
    ),
    TaskSpec(
        "semantic_segmentation",
        "image2semantic",
        "a seeded random colour per instance on black; colour -> category in `meta`",
        "dicepipe.targets.decode_masks:decode_instance_masks",
        20.0,
        ("coco_rem (COCO-format instances with categories)",),
    ),
    TaskSpec(
        "pose",
        "image2pose",
        "COCO limbs as coloured lines, keypoints as red (255, 0, 0) discs",
        "dicepipe.targets.decode_pose:decode_keypoints",
        20.0,
        ("coco (2017 person keypoints)", "synthetic (exact)"),
    ),
    TaskSpec(
        "highlight",
        "image2highlight",
        "the original image; the input is darkened by a gamma curve plus noise",
        "",
        0.0,
        ("few-shot pairs made by the finetune stage",),
        in_shards=False,
    ),
)

TASK_NAMES: tuple[str, ...] = tuple(spec.name for spec in TASKS)
SHARD_TASKS: tuple[str, ...] = tuple(spec.name for spec in TASKS if spec.in_shards)
TASK_PROMPTS: dict[str, str] = {spec.name: spec.prompt for spec in TASKS}


def task_spec(name: str) -> TaskSpec:
    """The spec of a task by name; a clear error naming the known tasks otherwise."""
    for spec in TASKS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}")
