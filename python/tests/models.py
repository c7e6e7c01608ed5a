"""Small models the tests inspect: every kind of module the issue names."""

import torch
from torch import nn


class Mixed(nn.Module):
    """Conv2d, BatchNorm2d, ReLU, an Embedding, LayerNorm, MultiheadAttention and Linear."""

    def __init__(self, channels=4, dim=8, vocab=11):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(channels * 4, dim)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(dim, 3)

    def forward(self, image, tokens):
        x = self.act(self.bn(self.conv(image)))  # [B, C, 4, 4]
        x = x.flatten(2).transpose(1, 2)  # [B, 16, C]
        x = x.reshape(x.shape[0], 4, -1)  # [B, 4, 4C]
        x = self.proj(x) + self.embed(tokens)  # [B, 4, dim]
        x = self.norm(x)
        x, _ = self.attn(x, x, x)
        return self.head(self.drop(x)).mean(1)


def mixed_inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 1, 4, 4, generator=g)
    tokens = torch.randint(0, 11, (batch, 4), generator=g)
    return image, tokens
