"""Small torch networks shared by the graph and pipeline tests."""

from __future__ import annotations

import torch
from torch import nn


class SmallConv(nn.Module):
    """conv(1->3, 3x3) -> relu 'act1' -> conv(3->4, 3x3) -> relu 'act2' -> fc 'fc' -> 'out'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 4, 3)
        self.act2 = nn.ReLU()
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.out = nn.Tanh()
        self.functional_layers = ["act1", "act2", "out"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.out(self.fc(h.flatten(1)))
