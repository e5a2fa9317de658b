"""Write ``tests/data/demo_reference.pt``: the demo model's output on a fixed input, the reference
that ``tests/test_pretrained.py`` holds the model code to (issue 16: a redesign must not change
what the demo model computes by more than 1e-5).

Run it only when the demo model's weights change on purpose: ``python tools/make_demo_reference.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import skimage.data
import torch

from pconv_lib import masks, pretrained
from pconv_lib.images import image_to_tensor, mask_to_tensor

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "demo_reference.pt"


def reference_input() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed 1x3x128x128 picture (scikit-image's astronaut, resized) and a seeded irregular mask."""
    picture = cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    mask = masks.random_mask_in_bucket(128, 128, 2, rng=0)
    return image_to_tensor(picture), mask_to_tensor(mask)


def main() -> None:
    image, mask = reference_input()
    with torch.no_grad():
        output = pretrained.demo_model()(image * mask, mask)
    OUT.parent.mkdir(exist_ok=True)
    torch.save({"output": output}, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), hole share {1 - mask.mean().item():.2f}")


if __name__ == "__main__":
    main()
