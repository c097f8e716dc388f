"""Feed-forward baselines of arXiv:2401.00428 (Sec. IV C): FNN and deep FNN."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FNN(nn.Module):
    """Feed-forward network: N -> hidden_factor*N (tanh) -> 1 (sigmoid)."""

    def __init__(self, n_features: int, hidden_factor: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden_factor * n_features),
            nn.Tanh(),
            nn.Linear(hidden_factor * n_features, 1),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output (batch,) for features x (batch, n_features)."""
        return self.net(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (batch,) for features x (batch, n_features)."""
        return torch.sigmoid(self.logits(x))


class DFNN(nn.Module):
    """Deep feed-forward network: N -> 3N -> 9N -> 3N (tanh), dropout after the last hidden layer, -> 1."""

    def __init__(
        self, n_features: int, hidden_factors: Sequence[int] = (3, 9, 3), dropout: float = 0.1
    ) -> None:
        super().__init__()
        if not hidden_factors:
            raise ValueError("hidden_factors must name at least one hidden layer")
        widths = [n_features] + [int(f) * n_features for f in hidden_factors]
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(widths[-1], 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output (batch,) for features x (batch, n_features)."""
        return self.net(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (batch,) for features x (batch, n_features)."""
        return torch.sigmoid(self.logits(x))
