"""Serving a fitted model by raw ids: top-k recommendations, pair scores, similar items, embeddings.

``Serving`` is the half of every estimator that answers questions once fitted; it needs
``model_`` (a scorer with ``score`` / ``score_users``), ``user_ids_``, ``item_ids_`` and
``user_items_`` (csr (n_users, n_items), what fit saw).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from irgan.metrics import BATCH_ELEMENTS
from irgan.topk import ordered_top_k


class Serving:
    """Recommend, score and compare by raw ids; ties go to the lower item index."""

    def _index_ids(self) -> None:
        self._user_lookup, self._item_lookup = pd.Index(self.user_ids_), pd.Index(self.item_ids_)

    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top ``k`` items for a raw user id or a list of them: DataFrame (user, item, score, rank),
        k rows per user (fewer when fewer unseen items remain), best first, rank 1-based.
        ``exclude_seen`` drops the items the user had in fit's data."""
        self._check_fitted()
        rows = self._lookup(self._user_lookup, users, "user")
        model, n_items = self.model_, len(self.item_ids_)
        device = _device_of(model)
        k = min(_positive(k), n_items)

        def scores_of(index: np.ndarray) -> torch.Tensor:
            scores = model.score_users(torch.as_tensor(index, device=device)).float()
            if exclude_seen:  # out of place: scores may share memory with the model (Popularity)
                seen = self.user_items_[index].tocoo()
                scores = scores.index_put((torch.as_tensor(seen.row, dtype=torch.long, device=device),
                                           torch.as_tensor(seen.col, dtype=torch.long, device=device)),
                                          torch.tensor(-torch.inf, device=device))
            return scores

        items, scores = _batched_top_k(rows, k, n_items, scores_of)
        keep = np.isfinite(scores).ravel()  # -inf: a seen item, used only when too few unseen remain
        return pd.DataFrame({
            "user": np.repeat(self.user_ids_[rows], k)[keep],
            "item": self.item_ids_[items.ravel()[keep]],
            "score": scores.ravel()[keep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(rows))[keep],
        })

    def score_pairs(self, users: Any, items: Any) -> np.ndarray:
        """Scores of (user, item) pairs by raw ids: arrays of equal length (or a scalar broadcast) -> float64 (n,)."""
        self._check_fitted()
        users, items = np.broadcast_arrays(_as_array(users), _as_array(items))
        u = self._lookup(self._user_lookup, users.ravel(), "user")
        i = self._lookup(self._item_lookup, items.ravel(), "item")
        model = self.model_
        device = _device_of(model)
        with torch.no_grad():
            out = model.score(torch.as_tensor(u, device=device), torch.as_tensor(i, device=device))
        return out.double().cpu().numpy().reshape(users.shape)

    def similar_items(self, items: Any, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose embeddings have the highest cosine similarity to each given raw item id
        (itself excluded): DataFrame (item, similar_item, score, rank), best first."""
        self._check_fitted()
        k = _positive(k)
        rows = self._lookup(self._item_lookup, items, "item")
        emb = F.normalize(self._embedding_model().item_emb.detach().float(), dim=1)
        k = min(k, len(self.item_ids_) - 1)
        if k == 0 or len(rows) == 0:
            return pd.DataFrame({"item": self.item_ids_[:0], "similar_item": self.item_ids_[:0],
                                 "score": np.empty(0), "rank": np.empty(0, np.int64)})

        def scores_of(index: np.ndarray) -> torch.Tensor:
            index = torch.as_tensor(index, device=emb.device)
            sims = emb.index_select(0, index) @ emb.T
            sims[torch.arange(len(index), device=emb.device), index] = -torch.inf
            return sims

        similar, scores = _batched_top_k(rows, k, len(self.item_ids_), scores_of)
        return pd.DataFrame({
            "item": np.repeat(self.item_ids_[rows], k),
            "similar_item": self.item_ids_[similar.ravel()],
            "score": scores.ravel(),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(rows)),
        })

    @property
    def user_embeddings(self) -> np.ndarray:
        """User embeddings of the serving model: float32 (n_users, dim), row order of ``user_ids_``."""
        self._check_fitted()
        return self._embedding_model().user_emb.detach().cpu().numpy().copy()

    @property
    def item_embeddings(self) -> np.ndarray:
        """Item embeddings of the serving model: float32 (n_items, dim), row order of ``item_ids_``."""
        self._check_fitted()
        return self._embedding_model().item_emb.detach().cpu().numpy().copy()

    def _embedding_model(self) -> nn.Module:
        model = getattr(self.model_, "scorer", self.model_)
        if not hasattr(model, "user_emb") or not hasattr(model, "item_emb"):
            raise NotImplementedError(f"{type(self).__name__}'s {type(model).__name__} has no user_emb / item_emb "
                                      "embeddings: similar_items and the embedding properties need them")
        return model

    @staticmethod
    def _lookup(index: pd.Index, raw: Any, kind: str) -> np.ndarray:
        """Matrix indices (int64 (n,)) of raw ids, a scalar or a sequence; KeyError names unknown ids."""
        raw = _as_array(raw).ravel()
        found = index.get_indexer(raw) if len(raw) else np.empty(0, np.int64)
        if (found < 0).any():
            unknown = raw[found < 0][:5].tolist()
            raise KeyError(f"unknown {kind} id(s) {unknown}: not in the data the model was fitted on")
        return found.astype(np.int64)


def _batched_top_k(rows: np.ndarray, k: int, n_cols: int,
                   scores_of: Callable[[np.ndarray], torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Columns (len(rows), k) of each row's k best scores, best first, and those scores (float64),
    scoring ``BATCH_ELEMENTS // n_cols`` rows at a time with ``scores_of(rows) -> (batch, n_cols)``."""
    batch = max(1, BATCH_ELEMENTS // n_cols)
    parts_cols, parts_scores = [], []
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            scores = scores_of(rows[start:start + batch])
            top = ordered_top_k(scores, k)
            parts_cols.append(top.cpu().numpy())
            parts_scores.append(scores.gather(1, top).cpu().numpy())
    if not parts_cols:
        return np.empty((0, k), np.int64), np.empty((0, k))
    return np.concatenate(parts_cols), np.concatenate(parts_scores).astype(np.float64)


def _positive(k: Any) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def _device_of(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()))
    return tensor.device


def _as_array(values: Any) -> np.ndarray:
    """Raw ids as a 1-d or 0-d numpy array (a string is one id, not a sequence of characters)."""
    if isinstance(values, (str, bytes)) or np.ndim(values) == 0:
        return np.asarray([values], dtype=object if isinstance(values, (str, bytes)) else None).reshape(())
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    return np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
