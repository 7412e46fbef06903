"""How each model's authors turned pixels into its input: channel order, scaling, mean/std, resize policy.

Kept here, keyed by registry name, so that the zoo's cards stay paper facts and a ported checkpoint is still
evaluated the way its authors did. A model not listed gets ImageNet mean/std on RGB in [0, 1] at native size
(what the zoo's models trained here use too).

input = ((pixels * pre_scale) - mean) / std * post_scale, on channels in `channel_order`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Preprocess:
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"  # or "BGR" (OpenCV pipelines)
    pre_scale: float = 1 / 255
    post_scale: float = 1.0
    # None: the image at its own size. (H, W): resized (bilinear) to it, logits resized back to the label.
    resize_hw: tuple[int, int] | None = None
    source: str = "ImageNet statistics (default)"

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NxHxWx3 RGB (or HxWx3) -> float32 NCHW model input (no resizing; protocols resize)."""
        x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if x.dim() == 3:
            x = x[None]
        x = x.permute(0, 3, 1, 2).float()
        if self.channel_order == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return ((x * self.pre_scale) - mean) / std * self.post_scale


IMAGENET = Preprocess()

# clovaai/ext_portrait_segmentation: etc/Visualize_video.py and Test_model.py read images with OpenCV (BGR),
# subtract the dataset mean and divide by the std per channel (0-255 values), then divide by 255, at 224x224.
SINET = Preprocess(
    mean=(107.304565, 115.69884, 132.35703),
    std=(63.97182, 65.1337, 68.29726),
    channel_order="BGR",
    pre_scale=1.0,
    post_scale=1 / 255,
    resize_hw=(224, 224),
    source="clovaai/ext_portrait_segmentation (BGR, (x - mean) / std / 255, 224x224)",
)

PREPROCESS: dict[str, Preprocess] = {"sinet": SINET}


def get_preprocess(model_name: str) -> Preprocess:
    return PREPROCESS.get(model_name, IMAGENET)
