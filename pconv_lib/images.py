"""The one conversion between pictures and tensors.

A picture is what files, OpenCV and matplotlib use: ``uint8`` (H, W, 3) RGB, 0..255. A tensor is
what the model uses: ``float32`` (1, 3, H, W), values in [0, 1]. Masks: ``(H, W)`` 0/1 array <->
``float32`` (1, 1, H, W) tensor, 1 = valid pixel, 0 = hole.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def image_to_tensor(image: np.ndarray) -> Tensor:
    """``uint8`` (H, W, 3) RGB -> ``float32`` (1, 3, H, W) in [0, 1] (``image / 255``)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)


def tensor_to_image(tensor: Tensor) -> np.ndarray:
    """``float`` (1, 3, H, W) or (3, H, W) in [0, 1] -> ``uint8`` (H, W, 3): clamped to [0, 1],
    times 255, rounded to the nearest level (half to even)."""
    if tensor.dim() == 4:
        tensor = tensor[0]
    out = tensor.detach().float().cpu().clamp(0, 1).mul(255.0).round_()
    return out.to(torch.uint8).permute(1, 2, 0).numpy()


def mask_to_tensor(mask: np.ndarray) -> Tensor:
    """(H, W) mask, 1 = valid, 0 = hole (any numeric dtype) -> ``float32`` (1, 1, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
