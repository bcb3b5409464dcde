"""The CUDA path of the Depth Pro teacher (bf16, pinned batches): runs only where CUDA is."""

import numpy as np
import pytest
import torch

from dicepipe.teachers.base import TeacherInput
from dicepipe.teachers.depth_pro import DepthProTeacher, save_random_depth_pro

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_bf16_on_cuda_matches_fp32_on_cpu(tmp_path):
    folder = save_random_depth_pro(tmp_path / "tiny", seed=0)
    rng = np.random.default_rng(0)
    batch = [
        TeacherInput(f"k{i}", "test", str(i), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
        for i in range(4)
    ]
    cuda = DepthProTeacher(folder, device="cuda", dtype="auto", batch_size=4)
    cpu = DepthProTeacher(folder, device="cpu", batch_size=4)
    assert cuda.identity.split(":")[2] == "bf16" and cpu.identity.split(":")[2] == "fp32"
    for fast, exact in zip(cuda.label(batch), cpu.label(batch), strict=True):
        assert fast.depth.shape == exact.depth.shape == (96, 128)
        relative = np.nanmedian(np.abs(fast.depth - exact.depth) / exact.depth)
        assert relative < 0.02 and abs(fast.focal_px - exact.focal_px) / exact.focal_px < 0.02
