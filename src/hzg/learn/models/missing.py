"""Learned embeddings of missing values (issue 14, seed paper 002, Sec. 2.3.4): an input that may be missing
(NaN, e.g. the jet features of an event without jets, `hzg.data.features.OPTIONAL_FEATURES`) gets its own
learned token, which replaces that feature's token wherever the value is missing, in place of a sentinel
number pushed through the feature's embedding.

`MissingTokens` is shared by the ETN and the FT-Transformer: `zeroed` gives the inputs with their NaN set to
0 and the mask of the missing ones, the model embeds the zeroed inputs as usual, and `forward` puts the
learned token at the masked positions (one `torch.where`, no loop over events or features). Zeroing first
keeps NaN out of the embedding's backward pass: a NaN in the unselected branch of `torch.where` would give
NaN gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MissingTokens(nn.Module):
    """One learned token (d) per input that may be missing, put in place of its token where it is NaN."""

    def __init__(self, n_features: int, missing: Sequence[int], d_token: int) -> None:
        super().__init__()
        index = sorted({int(i) for i in missing})
        if not index or index[0] < 0 or index[-1] >= n_features:
            raise ValueError(
                f"missing-value inputs must be among the {n_features} inputs, got {list(missing)}"
            )
        optional = torch.zeros(n_features, dtype=torch.bool)
        optional[index] = True
        # not in the state dict: the checkpoint's input columns say which inputs these are
        self.register_buffer("optional", optional, persistent=False)
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)
        bound = 1.0 / math.sqrt(d_token)
        self.token = nn.Parameter(torch.empty(len(index), d_token).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        return f"inputs={self.index.tolist()}"

    def zeroed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs x (batch, n_features) with their missing values set to 0, and the mask (batch, n_features)
        of the missing ones (NaN in an input that may be missing; a NaN elsewhere is left to propagate)."""
        mask = torch.isnan(x) & self.optional
        return x.masked_fill(mask, 0.0), mask

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tokens (batch, n_features, d) with the learned token of feature j wherever mask[:, j] is set."""
        table = tokens.new_zeros(tokens.shape[1], tokens.shape[2]).index_copy(
            0, self.index, self.token.to(tokens.dtype)
        )
        return torch.where(mask.unsqueeze(-1), table, tokens)
