"""Item k-nearest-neighbours (Sarwar et al., WWW 2001; Deshpande and Karypis, TOIS 2004) with the
similarities and feature weightings of Ferrari Dacrema et al.'s evaluation framework (TOIS 2021, the
one the ECIR 2022 study used): score(u, j) = the sum of j's similarities to the items u has, among
j's k nearest."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from irgan.models.held import HeldInteractions

#: Cells of the dense (block, n_items) similarity block computed at a time when fitting.
BLOCK_ELEMENTS = 2**22
#: Item-item similarities: cosine, asymmetric cosine (Aiolli, RecSys 2013), and the set
#: similarities Jaccard, Dice and Tversky, computed on binary X whatever the weighting.
SIMILARITIES = ("cosine", "asymmetric", "jaccard", "dice", "tversky")
SET_SIMILARITIES = ("jaccard", "dice", "tversky")
#: Weightings of X's entries before the similarity: none, Okapi BM25, TF-IDF (items as documents, users as terms).
FEATURE_WEIGHTINGS = ("none", "BM25", "TF-IDF")
BM25_K1, BM25_B = 1.2, 0.75  # the framework's constants


class ItemKNNScorer(HeldInteractions):
    """score(u, j) = x_u . S[:, j], with X (n_users, n_items) the binary interactions the scorer
    holds and S an item-item similarity pruned to each target item j's ``k`` most similar items
    (column j keeps k entries, ties to the lower index; the diagonal is never kept).

    S is one of the framework's ``Compute_Similarity`` (less its 1e-6 in every denominator), with
    o_ij the dot product of items i and j's columns of the weighted X (the co-occurrence count on
    binary X), n_i the squared norm of i's column (its count on binary X) and j the target:

    - cosine (the constructor's): o_ij / (n_i^½ n_j^½ + shrink); asymmetric cosine (Aiolli, RecSys
      2013): o_ij / (n_j^α n_i^(1-α) + shrink), α = ``asymmetric_alpha`` (½: the cosine); with
      ``normalize=False`` both are o_ij / shrink (o_ij when shrink is 0);
    - on binary X, ``normalize`` unused: jaccard o_ij / (n_i + n_j - o_ij + shrink); dice
      o_ij / (n_i + n_j + shrink) (half the usual Dice: the same ranking); tversky
      o_ij / (o_ij + a (n_j - o_ij) + b (n_i - o_ij) + shrink), a, b = ``tversky_alpha``, ``tversky_beta``.

    ``feature_weighting`` weighs X's entries first, the framework's way (items as documents, users
    as terms): "TF-IDF" x^½ idf_u, "BM25" x (K1+1) / (K1 L_i + x) idf_u, with idf_u = log(n_items
    / (1 + |I_u|)) and L_i = 1 - B + B |U_i| / mean |U|. The framework also scores with the weighted
    X: a user's binary profile times idf_u and, under BM25, (K1+1) / (K1 L_i + 1) on item i. Row i
    of S carries that item factor, so every user ranks as there (idf_u is positive for any user
    missing two or more items, and a per-user factor does not reorder a ranking).

    S is held sparse, row j of Sᵀ as CSR buffers ``sim_indptr`` (n_items + 1,), ``sim_indices``
    and ``sim_values`` (n_items * k at most): X and S move with ``.to(device)`` and load into a
    fresh ``ItemKNNScorer(n_users, n_items)``. Scoring a batch builds one dense (batch, n_items)
    block, nothing larger.
    """

    _resizable = ("indices", "sim_indices", "sim_values")
    _csr_buffers = (("indptr", "indices"), ("sim_indptr", "sim_indices"))

    def __init__(self, n_users: int, n_items: int, interactions: sp.spmatrix | None = None, k: int = 100,
                 shrink: float = 0.0) -> None:
        super().__init__()
        self._hold(n_users, n_items)
        self.register_buffer("sim_indptr", torch.zeros(n_items + 1, dtype=torch.int64))
        self.register_buffer("sim_indices", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("sim_values", torch.zeros(0))
        if interactions is not None:
            self.set_interactions(interactions)
            self.fit_similarity(k, shrink)

    def init_args(self) -> dict:
        """The constructor arguments that rebuild this scorer's shapes (saved in model files); X and
        S travel in the state dict."""
        return {"n_users": self.n_users, "n_items": self.n_items}

    def fit_similarity(self, k: int = 100, shrink: float = 0.0, similarity: str = "cosine",
                       feature_weighting: str = "none", normalize: bool = True, asymmetric_alpha: float = 0.5,
                       tversky_alpha: float = 1.0, tversky_beta: float = 1.0) -> "ItemKNNScorer":
        """Set S (see the class) from the held X, item blocks at a time with scipy, and return self."""
        _check_similarity(k, shrink, similarity, feature_weighting, asymmetric_alpha, tversky_alpha, tversky_beta)
        binary = sp.csr_matrix(self.interactions(), dtype=np.float64)
        weighted, profile = (binary, None) if feature_weighting == "none" else _weigh(binary, feature_weighting)
        if similarity in SET_SIMILARITIES:
            weighted = binary
        xt = sp.csr_matrix(weighted.T)
        squares = np.asarray(weighted.multiply(weighted).sum(0), dtype=np.float64).ravel()  # n_i
        k = min(k, self.n_items - 1)
        block = max(1, BLOCK_ELEMENTS // self.n_items)
        rows, cols, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for start in range(0, self.n_items if k > 0 else 0, block):
            targets = np.arange(start, min(start + block, self.n_items))
            overlap = (xt[targets] @ weighted).toarray()  # (targets, n_items) o_ji
            sims = _divide(overlap, targets, squares, similarity, shrink, normalize, asymmetric_alpha, tversky_alpha,
                           tversky_beta)
            sims[np.arange(len(targets)), targets] = 0.0
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]  # ties: the lower item index
            rows.append(np.repeat(targets, k))
            cols.append(top.ravel())
            values.append(np.take_along_axis(sims, top, axis=1).ravel())
        rows, cols, values = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
        if profile is not None:
            values = values * profile[cols]
        sim_t = sp.csr_matrix((values, (rows, cols)), shape=(self.n_items, self.n_items))
        sim_t.eliminate_zeros()
        sim_t.sort_indices()
        device = self.indptr.device
        self.sim_indptr = torch.as_tensor(sim_t.indptr.astype(np.int64), device=device)
        self.sim_indices = torch.as_tensor(sim_t.indices.astype(np.int64), device=device)
        self.sim_values = torch.as_tensor(sim_t.data, dtype=torch.float32, device=device)
        return self

    def similarity(self) -> torch.Tensor:
        """Sᵀ as a torch sparse COO tensor (n_items, n_items): row j holds j's neighbours and similarities."""
        rows = torch.repeat_interleave(torch.arange(self.n_items, device=self.sim_indptr.device), self.sim_indptr.diff())
        return torch.sparse_coo_tensor(torch.stack([rows, self.sim_indices]), self.sim_values,
                                       (self.n_items, self.n_items), is_coalesced=True, check_invariants=False)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a batch of users against the whole catalog: X[users] S, (len(users), n_items)."""
        return torch.sparse.mm(self.similarity(), self._rows(users, self.sim_values.dtype).T).T

    forward = score_users

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) pairs: two LongTensors (n,) give a float tensor (n,); each distinct
        user is scored once against the catalog."""
        unique, inverse = torch.unique(users, return_inverse=True)
        return self.score_users(unique)[inverse, items]


def _check_similarity(k: int, shrink: float, similarity: str, feature_weighting: str, *coefficients: float) -> None:
    """ValueError, in one line, unless the arguments of ``fit_similarity`` are valid."""
    if k < 1 or not shrink >= 0 or similarity not in SIMILARITIES or feature_weighting not in FEATURE_WEIGHTINGS \
            or not all(c >= 0 for c in coefficients):
        raise ValueError(f"item k-NN needs k >= 1, shrink >= 0, similarity in {SIMILARITIES}, feature_weighting in "
                         f"{FEATURE_WEIGHTINGS} and non-negative coefficients, got k={k}, shrink={shrink}, "
                         f"similarity={similarity!r}, feature_weighting={feature_weighting!r}, {coefficients}")


def _divide(overlap: np.ndarray, targets: np.ndarray, squares: np.ndarray, similarity: str, shrink: float,
            normalize: bool, asymmetric_alpha: float, tversky_alpha: float, tversky_beta: float) -> np.ndarray:
    """The similarities of a block: ``overlap`` (len(targets), n_items) float64, o_ji, divided by
    ``similarity``'s denominator (see ``fit_similarity``); 0 where o_ji is 0."""
    target, other = squares[targets, None], squares[None, :]
    if similarity == "cosine" and normalize:  # today's arithmetic, kept bit for bit
        norms = np.sqrt(squares)
        return overlap / np.maximum(norms[targets, None] * norms[None, :] + shrink, np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** negative on items without positives
        if similarity in ("cosine", "asymmetric") and not normalize:
            denominator = np.full_like(overlap, shrink if shrink else 1.0)
        elif similarity == "asymmetric":
            denominator = target ** asymmetric_alpha * other ** (1 - asymmetric_alpha) + shrink
        elif similarity == "jaccard":
            denominator = target + other - overlap + shrink
        elif similarity == "dice":
            denominator = target + other + shrink
        else:
            denominator = overlap + (target - overlap) * tversky_alpha + (other - overlap) * tversky_beta + shrink
    return np.divide(overlap, denominator, out=np.zeros_like(overlap), where=(overlap != 0) & (denominator > 0))


def _weigh(x: sp.csr_matrix, weighting: str) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """X (n_users, n_items, float64) weighted by ``weighting`` ("BM25" or "TF-IDF"; see
    ``fit_similarity``), and the factor (n_items,) the weighting puts on a binary profile's item i
    beyond the per-user idf (None: 1 for every item)."""
    n_items = x.shape[1]
    coo = x.tocoo()
    idf = np.log(n_items / (1.0 + np.diff(x.indptr)))  # per user: log(n_items / (1 + |I_u|))
    if weighting == "TF-IDF":
        data, profile = np.sqrt(coo.data) * idf[coo.row], None
    else:
        length = np.asarray(x.sum(0), dtype=np.float64).ravel()
        mean = length.mean()
        norm = (1.0 - BM25_B) + BM25_B * np.divide(length, mean, out=np.zeros_like(length), where=mean > 0)
        data = coo.data * (BM25_K1 + 1.0) / (BM25_K1 * norm[coo.col] + coo.data) * idf[coo.row]
        profile = (BM25_K1 + 1.0) / (BM25_K1 * norm + 1.0)
    return sp.csr_matrix((data, (coo.row, coo.col)), shape=x.shape), profile
