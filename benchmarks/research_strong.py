"""Issue 13: around the strong preset. Does a variant of its game, or an ensemble with EASE, help?

``variants``: each variant of the preset's parameters is fitted by the honest protocol's IRGAN fit
on u1.base less an outer 10% split (seed 100 + SPLIT): it carves its own inner validation split,
selects on it and refits; G and its start are then scored on the outer split, which no selection saw.

``ensemble``: on u1.base less a 10% validation split (seed SPLIT), EASE (l2 300) plus w x another
model, each standardised per user over the items the user has no train positive for; the other
model is the preset's G, its start, or iALS (the compare's defaults); validation P@5 per w.

    python -m benchmarks.research_strong --data-dir DATA variants --splits 0 [--only NAME,...]
    python -m benchmarks.research_strong --data-dir DATA ensemble --splits 0
    python -m benchmarks.research_strong --data-dir DATA variants --tiny   # shortened games: a smoke run
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from irgan.baselines import EASERecommender, IALSRecommender
from irgan.data import Split, load_dataset, validation_split
from irgan.metrics import evaluate
from irgan.protocol import CANDIDATES, STRONG

VARIANTS: dict[str, dict] = {
    "preset": {},
    "snis": {"g_estimator": "snis"},
    "refresh-exclude": {"d_negatives": "refresh", "d_exclude_positives": True},
    "g-lr-x3": {"g_lr": 3 * STRONG["g_lr"]},
    "epochs-30": {"epochs": 30},
    "dim-64": {"dim": 64, "pretrain": {"l2": 0.05}},  # the capacity and pretraining L2 tuned DNS-BPR chose
}
WEIGHTS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5)
TINY = {"epochs": 1, "d_epochs": 2, "g_epochs": 2}  # --tiny: every game this short, after 2 pretraining epochs


def shortened(params: dict) -> dict:
    """``params`` with TINY's epochs, and 2 pretraining epochs on top of its own pretraining fields."""
    return {**params, **TINY, "pretrain": {**params.get("pretrain", {}), "epochs": 2}}


def variants(data: Split, split: int, names: list[str], tiny: bool = False) -> list[dict]:
    """Each variant's G and its start, scored on an outer split no selection saw; the printed rows."""
    train, held = validation_split(data.train, 0.1, 100 + split)
    rows = []
    for name in names:
        params = {**STRONG, **VARIANTS[name]}
        fitted = CANDIDATES["irgan-strong"].fit(train, None, shortened(params) if tiny else params, split, "cpu",
                                                "P@5", 0.1)
        game, start = (evaluate(s, train.matrix, held.matrix) for s in (fitted.scorer, fitted.also["start"]))
        rows.append({"split": split, "variant": name, "G P@5": round(game["P@5"], 4),
                     "start P@5": round(start["P@5"], 4), "G - start P@5": round(game["P@5"] - start["P@5"], 4),
                     "G - start NDCG@5": round(game["NDCG@5"] - start["NDCG@5"], 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def ensemble(data: Split, split: int, tiny: bool = False) -> list[dict]:
    """Validation P@5 of EASE alone, of each other model alone, and of EASE + w x each; the printed rows."""
    train, validation = validation_split(data.train, 0.1, split)
    seen = train.matrix.toarray() > 0
    users = torch.arange(train.n_users)

    def standardised(scorer) -> np.ndarray:
        with torch.no_grad():
            scores = scorer.score_users(users).double().numpy()
        scores[seen] = np.nan
        scores = (scores - np.nanmean(scores, 1, keepdims=True)) / (np.nanstd(scores, 1, keepdims=True) + 1e-12)
        scores[seen] = -1e9  # below every standardised score (evaluate excludes train items itself)
        return scores

    fitted = CANDIDATES["irgan-strong"].fit(train, validation, shortened(STRONG) if tiny else STRONG, split, "cpu",
                                            "P@5", 0.1)
    ease = standardised(EASERecommender(l2=300.0).fit(train).model_)
    others = {"G": standardised(fitted.scorer), "start": standardised(fitted.also["start"]),
              "ials": standardised(IALSRecommender(factors=16, regularization=30.0, alpha=4.0, seed=split).fit(train).model_)}

    def p5(scores: np.ndarray) -> float:
        return round(evaluate(scores, train.matrix, validation.matrix)["P@5"], 4)
    rows = [{"split": split, "alone": {"ease": p5(ease), **{k: p5(v) for k, v in others.items()}}}]
    print(json.dumps(rows[-1]), flush=True)
    for w in WEIGHTS:
        rows.append({"split": split, "w": w, **{f"ease + w {k}": p5(ease + w * v) for k, v in others.items()}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Run ``variants`` or ``ensemble`` on each split; the printed rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("what", choices=("variants", "ensemble"))
    parser.add_argument("--splits", default="0")
    parser.add_argument("--only", default=",".join(VARIANTS))
    parser.add_argument("--tiny", action="store_true", help=f"every game shortened to {TINY}: a smoke run")
    args = parser.parse_args(argv)
    data = load_dataset("ml-100k", data_dir=args.data_dir, split="u1", seed=0)
    rows = []
    for split in (int(s) for s in args.splits.split(",")):
        if args.what == "variants":
            rows += variants(data, split, args.only.split(","), args.tiny)
        else:
            rows += ensemble(data, split, args.tiny)
    return rows


if __name__ == "__main__":
    main()
