"""Which layers of a small convolutional network with normalisation and attention would
overflow or flush to zero in f16, bf16, E4M3 and E5M2?

    python examples/python/inspect_convnet.py

One forward and backward pass in PyTorch; gradstab measures every module's output, output
gradient, parameters and parameter gradients on the GPU (or, without one, the CPU backend).
"""

import torch
from torch import nn
import torch.nn.functional as F

import gradstab.torch


class ConvAttention(nn.Module):
    """Conv → BatchNorm → ReLU → pool, then tokens through LayerNorm and self-attention."""

    def __init__(self, channels=16, dim=32, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, dim, 3, padding=1, stride=2)
        self.bn2 = nn.BatchNorm2d(dim)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads=4, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))  # [B, dim, 8, 8]
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # [B, 64, dim]
        tokens, _ = self.attn(tokens, tokens, tokens)
        return self.head(tokens.mean(1))


def main():
    torch.manual_seed(0)
    model = ConvAttention()
    images = torch.randn(8, 1, 16, 16)
    labels = torch.randint(0, 10, (8,))
    # The verdicts print one line per format; the DataFrame has the numbers behind them.
    df = gradstab.torch.inspect(model, images, labels, loss_fn=F.cross_entropy)
    at_risk = df[(df.e5m2_underflow > 0.01) | (df.f16_overflow > 0)]
    print()
    columns = ["module", "kind", "tensor", "count", "abs_max", "f16_underflow", "e5m2_underflow"]
    print(at_risk[columns].to_string())
    # Loss scaling multiplies every gradient by S: which tensors would a scale of 1024 rescue?
    scaled = gradstab.torch.inspect(
        model, images, labels, loss_fn=lambda out, y: 1024 * F.cross_entropy(out, y), verbose=False
    )
    print()
    print("with the loss scaled by 1024:", scaled.attrs["verdicts"]["e5m2"])


if __name__ == "__main__":
    main()
