"""A small MLP for the 8x8 handwritten digits (UCI / scikit-learn's ``load_digits``).

The weights are trained by ``train.py`` and shipped as ``.npz`` (no pickle). ``build`` is the
model perf-gate's demo measures; ``build_wide`` is the "new architecture" of the demo's pull
request: more accurate on paper, and far more compute per call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).parent
DATA = HERE / "digits.npz"
ARCHITECTURES = {"mlp": (128,), "wide": (384, 384)}


class DigitsMLP(nn.Module):
    """64 pixels -> hidden ReLU layers -> 10 classes."""

    def __init__(self, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 64
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 16.0)


def weights_path(architecture: str) -> Path:
    return HERE / f"weights-{architecture}.npz"


def load(architecture: str) -> DigitsMLP:
    model = DigitsMLP(ARCHITECTURES[architecture])
    with np.load(weights_path(architecture), allow_pickle=False) as stored:
        state = {name: torch.from_numpy(stored[name]) for name in stored.files}
    model.load_state_dict(state)
    return model.eval()


def build() -> DigitsMLP:
    return load("mlp")


def build_wide() -> DigitsMLP:
    return load("wide")


def example_batch(batch_size: int) -> torch.Tensor:
    """The first ``batch_size`` test images (repeated if needed) as float32 [batch, 64]."""
    with np.load(DATA, allow_pickle=False) as data:
        images = data["x"][-360:]
    index = np.arange(batch_size) % len(images)
    return torch.from_numpy(images[index].astype(np.float32))


def eval_set() -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out last 360 images and labels."""
    with np.load(DATA, allow_pickle=False) as data:
        return torch.from_numpy(data["x"][-360:].astype(np.float32)), torch.from_numpy(
            data["y"][-360:].astype(np.int64)
        )
