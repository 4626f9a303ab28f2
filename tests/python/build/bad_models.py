"""Models for the tests: a tiny good one and the kinds of bad ones users bring."""
import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)
        self.head = nn.Linear(8, num_classes)

    def forward(self, image):
        return self.head(self.conv(image).mean(dim=(2, 3)))


class OtherNet(nn.Module):
    """A different architecture: its checkpoint does not fit TinyNet."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4, 2)

    def forward(self, image):
        return self.fc(self.conv(image).mean(dim=(2, 3)))


class FlatNet(nn.Module):
    """Accepts only 3x64x64 images (a Linear over the flattened pixels)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 64 * 64, 2)

    def forward(self, image):
        return self.fc(image.flatten(1))


class NaNNet(TinyNet):
    def forward(self, image):
        return torch.log(super().forward(image) - 1e6)


@torch.library.custom_op("fieldops::soil_glow", mutates_args=())
def soil_glow(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@soil_glow.register_fake
def _soil_glow_fake(x):
    return torch.empty_like(x)


class CustomOpNet(TinyNet):
    """Calls an operator no ONNX exporter knows."""

    def forward(self, image):
        return soil_glow(super().forward(image))
