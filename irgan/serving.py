"""Serving a fitted model by raw ids: top-k recommendations (for the users fit saw, and for new
users from their histories), pair scores, similar items, embeddings.

``Serving`` is the half of every estimator that answers questions once fitted; it needs
``model_`` (a scorer with ``score`` / ``score_users``), ``user_ids_``, ``item_ids_`` and
``user_items_`` (csr (n_users, n_items), what fit saw).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from irgan.data import from_dataframe
from irgan.foldin import fold_in
from irgan.metrics import BATCH_ELEMENTS
from irgan.topk import ordered_top_k

log = logging.getLogger(__name__)

#: What ``recommend`` does with a user id fit never saw.
UNKNOWN = ("error", "popular", "skip")


class Serving:
    """Recommend, score and compare by raw ids; ties go to the lower item index."""

    def _index_ids(self) -> None:
        self._user_lookup, self._item_lookup = pd.Index(self.user_ids_), pd.Index(self.item_ids_)

    def recommend(self, users: Any, k: int = 10, exclude_seen: bool = True, unknown: str = "error") -> pd.DataFrame:
        """Top ``k`` items for a raw user id or a list of them: DataFrame (user, item, score, rank),
        k rows per user in the order given (fewer when fewer unseen items remain), best first, rank
        1-based. ``exclude_seen`` drops the items the user had in fit's data. ``unknown``: what a
        user id fit never saw gets: "error" (a KeyError naming such ids), "popular" (the items with
        the most positives in fit's data, scored by that count) or "skip" (no rows)."""
        self._check_fitted()
        if unknown not in UNKNOWN:
            raise ValueError(f"unknown must be one of {UNKNOWN}, got {unknown!r}")
        raw = _as_array(users).ravel()
        rows = self._user_lookup.get_indexer(raw) if len(raw) else np.empty(0, np.int64)
        missing = rows < 0
        if missing.any() and unknown == "error":
            raise KeyError(f"unknown user id(s) {raw[missing][:5].tolist()}: not in the data the model was fitted on "
                           "(recommend(..., unknown='popular' or 'skip') serves the others)")
        if unknown == "skip":
            raw, rows, missing = raw[~missing], rows[~missing], missing[~missing]
        model, n_items = self.model_, len(self.item_ids_)
        device = _device_of(model)
        k = min(_positive(k), n_items)
        popular = self._popularity(device) if missing.any() else None

        def scores_of(positions: np.ndarray) -> torch.Tensor:
            known = ~missing[positions]
            if not known.any():
                return popular.repeat(len(positions), 1)
            index = rows[positions][known]
            scores = model.score_users(torch.as_tensor(index, device=device)).float()
            if exclude_seen:  # out of place: scores may share memory with the model (Popularity)
                seen = self.user_items_[index].tocoo()
                scores = scores.index_put((torch.as_tensor(seen.row, dtype=torch.long, device=device),
                                           torch.as_tensor(seen.col, dtype=torch.long, device=device)),
                                          torch.tensor(-torch.inf, device=device))
            if known.all():
                return scores
            out = popular.repeat(len(positions), 1)
            out[torch.as_tensor(known, device=device)] = scores
            return out

        ids = self.user_ids_[rows] if not missing.any() else \
            _merged_ids(self.user_ids_[np.maximum(rows, 0)], raw, missing)
        return self._top_k_frame(ids, k, scores_of)

    def recommend_new(self, histories: Mapping | pd.DataFrame, k: int = 10) -> pd.DataFrame:
        """Top ``k`` items for users fit never saw, from their histories, the fitted model unchanged.

        ``histories``: a dict mapping each new user id to a list of raw item ids, or a DataFrame of
        rows user, item[, rating] as ``fit`` takes (ratings below ``min_rating`` dropped). Returns
        ``recommend``'s DataFrame (user, item, score, rank), users in the order given (a DataFrame:
        of first appearance), the history's items excluded. Each user is folded in as
        ``irgan.foldin`` describes (item-item: x W; factor models: the user's vector solved with the
        items fixed), in batches. An item id fit never saw is ignored, with one warning counting them:
        a new catalog item has no parameters to score with, and must not fail the batch; a user left
        with no known item gets the most popular items, as ``recommend(unknown="popular")``.
        A user id fit did see is folded in from the history given, like a new one."""
        self._check_fitted()
        model, n_items = self.model_, len(self.item_ids_)
        device = _device_of(model)
        k = min(_positive(k), n_items)
        users, history = self._histories(histories)
        with torch.no_grad():
            scores_for = self._fold_in()
        empty = np.diff(history.indptr) == 0
        if empty.any():
            log.warning("recommend_new: %d of %d user(s) have no item the model knows: they get the most popular items",
                        int(empty.sum()), len(users))
        popular = self._popularity(device) if empty.any() else None

        def scores_of(positions: np.ndarray) -> torch.Tensor:
            known = torch.as_tensor(history[positions].toarray(), device=device)
            scores = scores_for(known).float()
            if popular is not None:
                scores = torch.where(torch.as_tensor(empty[positions], device=device)[:, None], popular, scores)
            return scores.masked_fill(known > 0, -torch.inf)

        return self._top_k_frame(users, k, scores_of)

    def _fold_in(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``irgan.foldin.fold_in`` of the serving model; an estimator whose objective sets how a new
        user's vector is solved (iALS) overrides this."""
        return fold_in(self.model_)

    def _histories(self, histories: Mapping | pd.DataFrame) -> tuple[np.ndarray, sp.csr_matrix]:
        """The new users' raw ids (n_new,) and their known items as a binary csr (n_new, n_items)
        over the fitted items; logs how many history entries name items fit never saw."""
        if isinstance(histories, pd.DataFrame):
            df = from_dataframe(histories)
            codes, users = pd.factorize(df["user"])  # before the rating filter: a user left with none still gets a row
            users = np.asarray(users)
            if "rating" in df.columns and getattr(self, "min_rating", None) is not None:
                kept = df["rating"].to_numpy() >= self.min_rating
                df, codes = df[kept], codes[kept]
            items = df["item"].to_numpy()
        elif isinstance(histories, Mapping):
            users = _as_array(list(histories))
            lists = [_history_ids(user, items) for user, items in histories.items()]
            codes = np.repeat(np.arange(len(lists)), [len(items) for items in lists])
            textual = any(items.dtype.kind in "OSU" for items in lists)  # numpy would turn ints beside text into text
            items = np.concatenate([items.astype(object) if textual else items for items in lists]) if lists else \
                np.empty(0)
        else:
            raise TypeError("histories must be a dict {user: [item, ...]} or a DataFrame with columns user, item"
                            f"[, rating], got {type(histories).__name__}")
        try:
            index = self._item_lookup.get_indexer(items) if len(items) else np.empty(0, np.int64)
        except TypeError:  # e.g. a list or dict where an item id belongs
            raise TypeError("histories must list item ids (numbers or strings), found an unhashable value") from None
        unknown = index < 0
        if unknown.any():
            names = pd.unique(items[unknown])
            log.warning("recommend_new: ignored %d history entr%s naming %d item id(s) the model was not fitted on, "
                        "e.g. %s", int(unknown.sum()), "y" if unknown.sum() == 1 else "ies", len(names),
                        names[:5].tolist())
        known = ~unknown
        matrix = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (codes[known], index[known])),
                               shape=(len(users), len(self.item_ids_)))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0  # an item named twice is one positive
        return users, matrix

    def _popularity(self, device: torch.device) -> torch.Tensor:
        """Positives per item in fit's data: float32 (n_items,) on ``device``."""
        counts = np.asarray(self.user_items_.sum(0), dtype=np.float32).ravel()
        return torch.as_tensor(counts, device=device)

    def _top_k_frame(self, users: np.ndarray, k: int, scores_of: Callable[[np.ndarray], torch.Tensor]) -> pd.DataFrame:
        """``recommend``'s DataFrame for ``users`` (raw ids, (n,)), whose scores ``scores_of(positions)``
        gives ((len(positions), n_items), -inf for an excluded item), k columns at most per user."""
        items, scores = _batched_top_k(np.arange(len(users)), k, len(self.item_ids_), scores_of)
        keep = np.isfinite(scores).ravel()  # -inf: an excluded item, used only when too few others remain
        return pd.DataFrame({
            "user": np.repeat(users, k)[keep],
            "item": self.item_ids_[items.ravel()[keep]],
            "score": scores.ravel()[keep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), len(users))[keep],
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


def _history_ids(user: Any, items: Any) -> np.ndarray:
    """One user's history as a 1-d array of raw item ids (a list, set, array or one id)."""
    try:
        return _as_array(list(items) if isinstance(items, (set, frozenset)) else items).ravel()
    except ValueError:  # numpy refuses ragged nesting
        raise TypeError(f"histories[{user!r}] must be a list of item ids (numbers or strings)") from None


def _merged_ids(fitted: np.ndarray, raw: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """User ids as served: the fitted id where known, the raw id given where ``missing`` (n,)."""
    merged = fitted.astype(object)
    merged[missing] = raw[missing]
    return pd.Series(merged, dtype=object).infer_objects().to_numpy()


def _as_array(values: Any) -> np.ndarray:
    """Raw ids as a 1-d or 0-d numpy array (a string is one id, not a sequence of characters)."""
    if isinstance(values, (str, bytes)) or np.ndim(values) == 0:
        return np.asarray([values], dtype=object if isinstance(values, (str, bytes)) else None).reshape(())
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    values = list(values)
    array = np.asarray(values)
    if array.dtype.kind in "SU" and not all(isinstance(v, (str, bytes)) for v in values):
        return np.asarray(values, dtype=object)  # numpy would spell the id 2 beside "x" as "2"
    return array
