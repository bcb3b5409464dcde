"""Building teachers from `label` params: which teacher, on which device, with which normals,
one per process and params, and torch set up the same way in every worker."""

from __future__ import annotations

import os
import threading

from dicepipe.params.label import LabelParams
from dicepipe.teachers.auto import AutoTeacher
from dicepipe.teachers.base import Teacher
from dicepipe.teachers.cache import CachedTeacher
from dicepipe.teachers.depth_pro import DepthProTeacher
from dicepipe.teachers.ground_truth import GroundTruthTeacher
from dicepipe.teachers.identity import model_identity
from dicepipe.teachers.marigold import MarigoldNormalsTeacher
from dicepipe.teachers.normals import GeometryNormalsTeacher
from dicepipe.teachers.plugin import build_plugin_normals, is_plugin, resolve_factory
from dicepipe.weights import resolve_device


def configure_torch(params: LabelParams) -> None:
    """Make torch compute labels the same way in every worker of every runner: the thread
    count of `label.torch_threads` (Dask workers start with one, thread runners with every
    core, and the count changes float results) and, on CUDA, deterministic kernels.

    Call it in the thread that labels, before labelling (the label task does): torch's CPU
    thread count is per calling thread under OpenMP.
    """
    import torch

    if torch.get_num_threads() != params.torch_threads:
        torch.set_num_threads(params.torch_threads)
    if params.device != "cpu" and torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


_BUILDING = threading.Lock()
_TEACHERS: dict[LabelParams, Teacher] = {}


def shared_teacher(params: LabelParams) -> Teacher:
    """One teacher per process and params: tasks on the same worker share the loaded model.

    The teachers live in this module's dict, one per process: a Dask worker process keeps
    them across the tasks it runs (the task, pickled by value from the flow script, refers to
    this module by name). Built under a lock: two task threads building at once would load
    the model twice, and transformers' lazy imports are not safe to race.
    """
    with _BUILDING:
        if params not in _TEACHERS:
            _TEACHERS[params] = make_teacher(params)
        return _TEACHERS[params]


def built_teacher(params: LabelParams) -> Teacher | None:
    """The shared teacher of `params` if this process built one, else None (never builds:
    under Dask the teachers live in the workers, and the flow must not load a model)."""
    with _BUILDING:
        return _TEACHERS.get(params)


def make_teacher(params: LabelParams) -> Teacher:
    """Build the teacher that `params.teacher` names (models load lazily under `auto`)."""

    exact = GroundTruthTeacher(params.ground_truth_dir)
    if params.teacher == "ground_truth":
        return exact
    if params.teacher == "depth_pro":
        return build_model_teacher(params)
    fallback = model_identity(params, _device_type(model_device(params)))
    return AutoTeacher(exact, lambda: build_model_teacher(params), fallback)


def check_teacher(params: LabelParams) -> None:
    """Fail early (in the flow, before any worker starts) on a normals plug-in that does not
    import; the model itself is loaded only where units are labelled."""

    if is_plugin(params.normals):
        resolve_factory(params.normals)


def model_device(params: LabelParams) -> str:
    """The device of the model teachers: `auto` under a dask-cuda runner is the worker's own
    GPU (`cuda`, which LocalCUDACluster or `dask cuda worker` makes its cuda:0), never a
    silent fall back to the CPU; otherwise `label.device`."""
    if params.runner.pins_gpus and params.device == "auto":
        return "cuda"
    return params.device


def _device_type(device: str) -> str:
    try:
        return resolve_device(device).type
    except (ValueError, RuntimeError):  # reported when a model is built, if one is needed
        return device


def build_model_teacher(params: LabelParams, *, cached: bool = True) -> Teacher:
    """Depth Pro (+ geometry, Marigold or plug-in normals), behind the per-item label cache."""

    depth = DepthProTeacher(
        params.weights,
        device=model_device(params),
        dtype=params.dtype,
        batch_size=params.batch_size,
        use_exif_focal=params.use_exif_focal,
        allow_download=params.allow_download,
        torch_threads=params.torch_threads,
    )
    teacher = _with_normals(params, depth)
    if not cached or params.cache_dir is None:
        return teacher
    return CachedTeacher(teacher, params.cache_dir)


def _with_normals(params: LabelParams, depth: Teacher) -> Teacher:
    """The teacher that adds `params.normals` to the depth teacher's labels."""
    if params.normals == "none":
        return depth
    if params.normals == "geometry":
        return GeometryNormalsTeacher(
            depth,
            max_relative_jump=params.geometry.max_relative_jump,
            step=params.geometry.step,
            device=model_device(params),
        )
    if params.normals == "marigold":
        m = params.marigold
        return MarigoldNormalsTeacher(
            m.weights,
            depth_teacher=depth,
            num_inference_steps=m.num_inference_steps,
            ensemble_size=m.ensemble_size,
            processing_resolution=m.processing_resolution,
            seed=m.seed,
            batch_size=params.batch_size,
            device=model_device(params),
            dtype=params.dtype,
            allow_download=params.allow_download,
        )

    return build_plugin_normals(params, depth)
