"""A small crop/weed image classifier: three strided conv blocks and a linear head."""
import torch
from torch import nn


class CropWeedNet(nn.Module):
    def __init__(self, num_classes=2, width=16):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, image):
        x = self.features(image)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
