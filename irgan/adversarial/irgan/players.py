"""IRGAN's two players, each wrapping any scorer (Wang et al., SIGIR 2017).

A scorer is any ``torch.nn.Module`` with ``score(users, items) -> (n,)`` and
``score_users(users) -> (len(users), n_items)``. The generator G turns its scorer into a softmax
over the catalog to sample from; the discriminator D turns its scorer into the probability that
a (user, item) pair is real, and into G's reward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irgan.models.build import check_scorer
from irgan.models.mf import MatrixFactorization
from irgan.training.fast_mf import packed_items, packed_users
from irgan.training.policy import Policy
from irgan.training.sampling import sample_rows

REWARDS = ("code", "paper")


class Player(nn.Module):
    """A scorer in a role; ``score`` and ``score_users`` are the scorer's, so a player ranks too."""

    def __init__(self, scorer: nn.Module) -> None:
        super().__init__()
        self.scorer = check_scorer(scorer)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scorer.score(users, items)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.scorer.score_users(users)

    forward = score_users



class Generator(Player):
    """IRGAN's generator G: a softmax over the catalog, p(i | u) ∝ exp(score(u, i) / temperature)."""

    def log_probs(self, users: torch.Tensor, temperature: float = 1.0, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """log p(i | u) for a batch of users: (len(users), n_items). ``exclude`` is a boolean mask
        of the same shape whose True entries get probability 0 (e.g. the users' positives)."""
        logits = self.score_users(users)
        if temperature != 1:
            logits = logits / temperature
        if exclude is not None:
            logits = logits.masked_fill(exclude, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    @torch.no_grad()
    def sample(
        self,
        users: torch.Tensor,
        counts: torch.Tensor,
        temperature: float = 1.0,
        exclude: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``counts[k]`` items (with replacement) for each ``users[k]`` from p(. | u).

        ``out``: a float32 buffer of at least len(users) x n_items elements that may hold an MF
        generator's softmax rows; a caller drawing batch after batch passes one, so that each batch
        writes into memory already paged in (G holds none: a kept copy of G copies only its tables).
        Returns a LongTensor of shape (counts.sum(),), the items of users[0] first.
        """
        if exclude is None and type(self.scorer) is MatrixFactorization:  # the MF fast path's softmax
            policy = Policy.of_mf(packed_users(self.scorer, users), packed_items(self.scorer), temperature, out)
            return policy.sample(counts, generator)
        return sample_rows(self.log_probs(users, temperature, exclude).exp(), counts, generator)


class Discriminator(Player):
    """IRGAN's discriminator D: sigmoid(score(u, i)) is the probability that i is a real item of u."""

    def reward(self, users: torch.Tensor, items: torch.Tensor, kind: str = "code") -> torch.Tensor:
        """The generator's reward for proposing ``items`` to ``users`` (n,)."""
        return to_reward(self.score(users, items), kind)

    def reward_users(self, users: torch.Tensor, kind: str = "code") -> torch.Tensor:
        """The reward of every item for a batch of users: (len(users), n_items)."""
        return to_reward(self.score_users(users), kind)


def to_reward(logits: torch.Tensor, kind: str = "code") -> torch.Tensor:
    """``"code"``: 2 (sigmoid(f) - 1/2), the authors' released code; ``"paper"``: log(1 + exp(f)),
    the reward written in the paper."""
    if kind == "code":
        return 2 * (torch.sigmoid(logits) - 0.5)
    if kind == "paper":
        return F.softplus(logits)
    raise ValueError(f"unknown reward {kind!r}: use 'code' or 'paper'")
