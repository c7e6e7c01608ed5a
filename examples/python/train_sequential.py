"""Train your own nn.Sequential in f32, bf16 and FP8 and compare the loss curves.

    python examples/python/train_sequential.py

gradstab takes the model's weights and activation as they are, trains it on the GPU (or the
CPU backend) in each precision, and writes the trained f32 model back under its own parameter
names, so that `model.load_state_dict` takes it.
"""

from collections import OrderedDict

import torch
from torch import nn

import gradstab.torch


def main():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(32, 64),
            act1=nn.Tanh(),
            fc2=nn.Linear(64, 64),
            act2=nn.Tanh(),
            fc3=nn.Linear(64, 8),
        )
    )
    net = gradstab.torch.from_sequential(model)
    result = net.train(
        precision=["f32", "bf16", "fp8"], steps=150, samples=256, optimizer="adam", lr=0.003
    )
    steps = result.steps()
    final = steps.groupby("precision").loss.last()
    print(final.to_string())
    result.plot("train_sequential.svg")
    print("loss curves: train_sequential.svg")

    f32 = net.train(precision="f32", steps=150, samples=256, optimizer="adam", lr=0.003)
    f32.save_weights("trained.safetensors")
    from safetensors.torch import load_file

    model.load_state_dict(load_file("trained.safetensors"))
    print("trained weights loaded back into the model:", list(model.state_dict())[:3], "…")


if __name__ == "__main__":
    main()
