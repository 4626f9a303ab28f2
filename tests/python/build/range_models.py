"""Models for the evidence tests: dynamic sequence axes, detections, fp16, integer inputs."""
import torch
from torch import nn


class SeqNet(nn.Module):
    """[batch, seq, 4] -> [batch, 3]: a per-step linear layer averaged over the sequence."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).mean(dim=1)


class LongSeqNet(SeqNet):
    """SeqNet, except above 12 steps (a model whose long-sequence path no one exercised)."""

    def forward(self, x):
        out = super().forward(x)
        return out * 1.5 if x.shape[1] > 12 else out


class DetectorNet(nn.Module):
    """Detections above a score no sigmoid reaches: always zero of them, plus each image's best score."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, image):
        scores = torch.sigmoid(self.conv(image)).flatten()
        return scores[scores > 2.0], scores.reshape(image.shape[0], -1).amax(dim=1)


class HalfNet(nn.Module):
    """An fp16 network."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)
        self.half()

    def forward(self, x):
        return torch.tanh(self.fc(x))


class TokenNet(nn.Module):
    """Token ids (a 10-word vocabulary) and a bool attention mask."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, tokens, mask):
        h = self.embed(tokens) * mask.unsqueeze(-1).to(torch.float32)
        return self.fc(h.sum(dim=1))
