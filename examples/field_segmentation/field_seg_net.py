"""A two-headed field model: scene class logits (soil / crop rows / weeds) and a plant mask."""
import torch
from torch import nn
from torch.nn import functional as F


class FieldSegNet(nn.Module):
    def __init__(self, num_classes=3, width=12):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.enc1 = block(3, width, 1)
        self.enc2 = block(width, 2 * width, 2)
        self.enc3 = block(2 * width, 4 * width, 2)
        self.classifier = nn.Linear(4 * width, num_classes)
        self.mask_head = nn.Conv2d(4 * width + width, 1, 1)

    def forward(self, image):
        f1 = self.enc1(image)
        f3 = self.enc3(self.enc2(f1))
        logits = self.classifier(torch.flatten(F.adaptive_avg_pool2d(f3, 1), 1))
        up = F.interpolate(f3, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        mask = self.mask_head(torch.cat([up, f1], dim=1))
        return logits, mask
