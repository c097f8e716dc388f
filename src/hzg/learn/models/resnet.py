"""Tabular ResNet of Gorishniy et al. 2021 ("Revisiting Deep Learning Models for Tabular Data")."""

from __future__ import annotations

import torch
from torch import nn


class ResNetBlock(nn.Module):
    """x + Dropout(Linear(Dropout(ReLU(Linear(BatchNorm(x))))))."""

    def __init__(self, d: int, d_hidden: int, hidden_dropout: float, residual_dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm1d(d),
            nn.Linear(d, d_hidden),
            nn.ReLU(),
            nn.Dropout(hidden_dropout),
            nn.Linear(d_hidden, d),
            nn.Dropout(residual_dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update of x (batch, d)."""
        return x + self.net(x)


class ResNet(nn.Module):
    """Linear(N -> d), n_blocks residual blocks, BatchNorm -> ReLU -> Linear(d -> 1) -> sigmoid."""

    def __init__(
        self,
        n_features: int,
        d: int = 64,
        d_hidden: int = 128,
        n_blocks: int = 2,
        hidden_dropout: float = 0.1,
        residual_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.first = nn.Linear(n_features, d)
        self.blocks = nn.Sequential(
            *(ResNetBlock(d, d_hidden, hidden_dropout, residual_dropout) for _ in range(n_blocks))
        )
        self.head = nn.Sequential(nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output (batch,) for features x (batch, n_features)."""
        return self.head(self.blocks(self.first(x))).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Signal probability (batch,) for features x (batch, n_features)."""
        return torch.sigmoid(self.logits(x))
