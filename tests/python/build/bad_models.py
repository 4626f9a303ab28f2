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


class LoopRNN(nn.Module):
    """A recurrent net stepping through the sequence in a Python loop: torch.export and the tracer
    both specialise it to the example length."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(4, 6)

    def forward(self, seq):
        h = torch.zeros(seq.shape[0], 6)
        steps = []
        for t in range(seq.shape[1]):
            h = self.cell(seq[:, t], h)
            steps.append(h)
        return torch.stack(steps, 1)


class PeakNet(nn.Module):
    """Shape-dependent control flow: picks a branch by the input's length (a Python int)."""

    def forward(self, seq):
        if seq.shape[1] > 8:
            return seq.mean(1)
        return seq.sum(1)


class TwoInputNet(nn.Module):
    """Takes `image` and `scale` (by name: listing them in another order must not swap them)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)

    def forward(self, image, scale):
        return self.conv(image).mean(dim=(2, 3)) * scale


class DictNet(TinyNet):
    """Returns a dict with a nested tuple: flattened as logits, aux.0, aux.1."""

    def forward(self, image):
        logits = super().forward(image)
        return {"logits": logits, "aux": (logits.softmax(1), image.mean(dim=(1, 2, 3)))}


class FftNet(TinyNet):
    def forward(self, image):
        return super().forward(torch.fft.rfft2(image).abs())


class SlogdetNet(TinyNet):
    def forward(self, image):
        return super().forward(image) * torch.linalg.slogdet(image[:, :, :4, :4])[1].mean()


class DiffNet(TinyNet):
    def forward(self, image):
        return super().forward(torch.diff(image, dim=3, prepend=image[..., :1]))


class NumpyGlow(torch.autograd.Function):
    """A custom autograd.Function computing in NumPy, with no ONNX symbolic."""

    @staticmethod
    def forward(ctx, x):
        return torch.from_numpy(x.detach().numpy() * 2)

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class AutogradFunctionNet(TinyNet):
    def forward(self, image):
        return NumpyGlow.apply(super().forward(image))


class ItemNet(TinyNet):
    """Reads a tensor into a Python number: the trace bakes in the example's value."""

    def forward(self, image):
        return super().forward(image) * float(image.max())


class TinyBert(nn.Module):
    """A two-layer transformers BERT (random weights): it returns a `ModelOutput`
    (last_hidden_state, pooler_output), the default of Hugging Face models."""

    def __init__(self):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=64))

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask)
