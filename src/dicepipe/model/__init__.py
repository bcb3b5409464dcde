"""DICEPTION model: SD3 MMDiT with task/point context, flow-matching loss, sampler, LoRA."""

from .diception import DiceptionModel, preset_parameters
from .flow import FlowConfig, flow_matching_loss, foreground_weight_map, sample_timesteps
from .lora import add_lora, load_lora, save_lora, trainable_fraction
from .points import MAX_POINTS, PointEncoder
from .presets import PRESETS, count_parameters, preset, transformer_parameters
from .prompts import (
    DEFAULT_PROMPTS,
    cache_task_prompts,
    encode_prompts,
    load_prompt_cache,
    save_prompt_cache,
)
from .sampler import predict
from .space import LatentSpace, PixelSpace, make_space
from .tasks import DEFAULT_TASKS, TaskTable

__all__ = [
    "DEFAULT_PROMPTS",
    "DEFAULT_TASKS",
    "MAX_POINTS",
    "PRESETS",
    "DiceptionModel",
    "FlowConfig",
    "LatentSpace",
    "PixelSpace",
    "PointEncoder",
    "TaskTable",
    "add_lora",
    "cache_task_prompts",
    "count_parameters",
    "encode_prompts",
    "flow_matching_loss",
    "foreground_weight_map",
    "load_lora",
    "load_prompt_cache",
    "make_space",
    "predict",
    "preset",
    "preset_parameters",
    "sample_timesteps",
    "save_lora",
    "save_prompt_cache",
    "trainable_fraction",
    "transformer_parameters",
]
