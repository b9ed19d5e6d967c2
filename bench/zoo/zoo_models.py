"""A small model zoo of the architectures that trip up exporters, parity checks and int8:
made here with random weights (seeded), so nothing is downloaded.

- ``branchy``: ``forward`` takes a branch on the inputs' values (data-dependent control flow);
- ``kwblock``: a transformer-style block called with a dict of named inputs and keyword
  arguments of its own (``use_cache``, ``output_attentions``), returning a dict, as Hugging
  Face models do;
- ``tied``: a classifier whose outputs are nearly equal for every class (random weights, like
  a freshly initialised network): its top-1 class is decided by ~1e-5 of 0.5;
- ``convnet``: convolutions, batch norm and pooling only (no Linear layer);
- ``lstm``: an LSTM over a sequence and a Linear head;
- ``elementwise``: no layer that int8 can quantize at all.

Each has ``build_<name>()`` and ``inputs_<name>(batch_size)``.
"""

from __future__ import annotations

import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up = nn.Linear(64, 128)
        self.down = nn.Linear(128, 10)
        self.skip = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:  # which branch depends on the values, not the shapes
            return self.down(torch.relu(self.up(x)))
        return self.skip(x) * 3.0


def build_branchy() -> nn.Module:
    return Branchy()


def inputs_branchy(batch_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch_size)
    return torch.randn(batch_size, 64, generator=generator) + 0.05


class KeywordBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(1000, 64)
        self.attention = nn.MultiheadAttention(64, 4, batch_first=True)
        self.norm = nn.LayerNorm(64)
        self.ff = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))
        self.head = nn.Linear(64, 4)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool | None = None,
        return_dict: bool = True,
    ) -> dict[str, torch.Tensor]:
        hidden = self.embed(input_ids)
        padding = attention_mask == 0 if attention_mask is not None else None
        attended, _ = self.attention(
            hidden, hidden, hidden, key_padding_mask=padding, need_weights=False
        )
        hidden = self.norm(hidden + attended)
        hidden = self.norm(hidden + self.ff(hidden))
        return {"logits": self.head(hidden[:, 0]), "last_hidden_state": hidden}


def build_kwblock() -> nn.Module:
    return KeywordBlock()


def inputs_kwblock(batch_size: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch_size)
    ids = torch.randint(0, 1000, (batch_size, 16), generator=generator)
    mask = torch.ones(batch_size, 16, dtype=torch.int64)
    mask[:, 12:] = 0
    return {"attention_mask": mask, "input_ids": ids}  # not forward's order


class Tied(nn.Module):
    """Outputs within ~1e-5 of each other for every class (relative margins ~1e-5), as random
    weights in a deep network give: int8's rounding decides its top-1 class."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 100))
        with torch.no_grad():
            self.body[2].weight.mul_(1e-4)
            self.body[2].bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_tied() -> nn.Module:
    return Tied()


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 10, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def build_convnet() -> nn.Module:
    return ConvNet()


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True)
        self.head = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(x)
        return self.head(output[:, -1])


def build_lstm() -> nn.Module:
    return Recurrent()


class Elementwise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * 2.0 + 1.0


def build_elementwise() -> nn.Module:
    return Elementwise()
