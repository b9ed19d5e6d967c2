"""Train the digits MLPs and write their weights as .npz (run from this directory)."""

from __future__ import annotations

import numpy as np
import torch
from model import ARCHITECTURES, DATA, DigitsMLP, eval_set, weights_path
from torch import nn


def train(architecture: str, epochs: int = 300, seed: int = 0) -> float:
    torch.manual_seed(seed)
    with np.load(DATA, allow_pickle=False) as data:
        x = torch.from_numpy(data["x"][:-360].astype(np.float32))
        y = torch.from_numpy(data["y"][:-360].astype(np.int64))
    model = DigitsMLP(ARCHITECTURES[architecture])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    model.eval()
    test_x, test_y = eval_set()
    with torch.inference_mode():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez_compressed(weights_path(architecture), **state)
    return accuracy


if __name__ == "__main__":
    for name in ARCHITECTURES:
        print(f"{name}: test accuracy {train(name):.3f}")
