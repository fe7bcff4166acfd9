"""What helps adversarial training: named IRGAN configurations on ml-100k u1, selected on validation.

Each configuration plays on u1.base less a 10% validation split (seed 0) and reports the
validation figure of its pretrained start, of its best G and of its best D (each player kept at
its best evaluation, as the recipe does), with seconds. Nothing here looks at u1.test: the
configurations worth testing go through ``python -m irgan.compare`` (tuning, refit, seeds, paired tests).

    python -m benchmarks.research_adversarial --data-dir DATA --only ease-d-hard,ease-d-uniform
    python -m benchmarks.research_adversarial --data-dir DATA --tiny   # every configuration, shortened: a smoke run
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from irgan.training.als import fit_ials
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import load_dataset, validation_split
from irgan.device import keep_freed_memory
from irgan.metrics import evaluate
from irgan.models import ItemItemScorer
from irgan.adversarial.irgan.recipe import run_recipe

STRONG_DNS = BPRConfig(dim=64, lr=0.05, l2=0.05, epochs=100)  # the compare's DNS defaults (validation P@5 0.1123)
SHORT = dict(epochs=8, d_epochs=20, g_epochs=20, eval_every=5)
ALS_START = "ials-start.npz"  # written by main() from iALS fitted on the same training split

CONFIGS = {
    # 1. capacity and optimisation
    "mf64-paper-lr": IRGANConfig(dim=64, pretrain=STRONG_DNS, **SHORT),
    "mf64-adam": IRGANConfig(dim=64, pretrain=STRONG_DNS, optimizer="adam", d_lr=1e-3, g_lr=1e-4, d_l2=0.05, **SHORT),
    "mf64-adam-exact": IRGANConfig(dim=64, pretrain=STRONG_DNS, optimizer="adam", d_lr=1e-3, g_lr=1e-4, d_l2=0.05,
                                   g_estimator="exact", **SHORT),
    "mf64-snis": IRGANConfig(dim=64, pretrain=STRONG_DNS, g_estimator="snis", d_l2=0.05, **SHORT),
    # 2. G as a hardness-controlled sampler for a strong D (D the recommender), false negatives kept out
    "mf64-d-hard": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_exclude_positives=True, d_negatives="refresh",
                               d_temperature=0.5, g_epochs=0, epochs=8, d_epochs=20, d_l2=0.05),
    # 3. an item-item D started from EASE, fine-tuned against G's samples; the same without an adversary
    "ease-d-hard": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_scorer="itemitem", d_exclude_positives=True,
                               d_negatives="refresh", d_temperature=0.5, d_lr=1e-4, d_l2=0.0, **SHORT),
    "ease-d-uniform": IRGANConfig(dim=64, init="random", d_scorer="itemitem", d_exclude_positives=True,
                                  d_negatives="refresh", d_temperature=0.5, d_lr=1e-4, d_l2=0.0, epochs=8, d_epochs=20,
                                  g_epochs=0),
    "ease-d-hard-1e-5": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_scorer="itemitem", d_exclude_positives=True,
                                    d_negatives="refresh", d_temperature=0.5, d_lr=1e-5, d_l2=0.0, **SHORT),
    "ease-d-hard-1e-6": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_scorer="itemitem", d_exclude_positives=True,
                                    d_negatives="refresh", d_temperature=0.5, d_lr=1e-6, d_l2=0.0, **SHORT),
    "ease-d-hard-1e-8": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_scorer="itemitem", d_exclude_positives=True,
                                    d_negatives="refresh", d_temperature=0.5, d_lr=1e-8, d_l2=0.0, **SHORT),
    "mf64-d-hard-adam": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_exclude_positives=True, d_negatives="refresh",
                                    d_temperature=0.5, optimizer="adam", d_lr=1e-3, d_l2=0.05, g_epochs=0,
                                    epochs=8, d_epochs=50),
    # 4. the game from the strongest start: G is the iALS model (16 factors), D an MF-16
    "ials-g-paper-lr": IRGANConfig(init=ALS_START, dim=16, **SHORT),
    "ials-g-fast": IRGANConfig(init=ALS_START, dim=16, g_lr=0.005, **SHORT),
    "ials-g-snis": IRGANConfig(init=ALS_START, dim=16, g_lr=0.005, g_estimator="snis", **SHORT),
    "ials-g-full": IRGANConfig(init=ALS_START, dim=16),
    "ials-g-full-dim32-lrs": IRGANConfig(init=ALS_START, dim=16, g_lr=0.0047, d_lr=1.6e-4, d_l2=0.9),
    "ease-g": IRGANConfig(dim=64, init="random", g_scorer="itemitem", d_scorer="mf", g_estimator="exact",
                          g_lr=1e-4, **SHORT),
}


def tiny(config: IRGANConfig) -> IRGANConfig:
    """``config`` shortened to seconds: one outer epoch of at most 2 D- and 2 G-epochs, 2 pretraining epochs."""
    return dataclasses.replace(config, epochs=1, d_epochs=min(config.d_epochs, 2), g_epochs=min(config.g_epochs, 2),
                               eval_every=1, pretrain=dataclasses.replace(config.pretrain, epochs=2))


def main(argv: list[str] | None = None) -> list[dict]:
    """Play each named configuration and print (and with --out append) its JSON row; the rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--only", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--out", default=None, help="append one JSON line per configuration here")
    parser.add_argument("--tiny", action="store_true", help="every configuration shortened by tiny(): a smoke run")
    args = parser.parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.WARNING)
    data = load_dataset("ml-100k", data_dir=args.data_dir)
    train, validation = validation_split(data.train, 0.1, 0)
    ease = evaluate(ItemItemScorer(*train.shape, train.matrix).fit_ease(300.0), train, validation)
    print(f"EASE(300) on this validation split: P@5 {ease['P@5']:.4f}, NDCG@5 {ease['NDCG@5']:.4f}")
    names = args.only.split(",") if args.only else [*CONFIGS, *ANCHORED]
    folder = Path(tempfile.mkdtemp())
    rows = []
    for name in names:
        start = time.perf_counter()
        config = {**CONFIGS, **ANCHORED}[name]
        if args.tiny:
            config = tiny(config)
        if config.init == ALS_START:
            config = dataclasses.replace(config, init=str(_als_start(train, folder / ALS_START)))
        anchored = AnchoredItemItem(*train.shape, train.matrix) if name in ANCHORED else None
        result = run_recipe(train, None, config, validation=validation, seed=0, device="cpu", discriminator=anchored)
        row = {"name": name, "seconds": round(time.perf_counter() - start, 1),
               "start": evaluate(result.init, train, validation)["P@5"] if result.init is not None else None,
               "G": result.best_generator["metrics"]["P@5"], "G_at": [result.best_generator.get("epoch"),
                                                                    result.best_generator.get("g_epoch")],
               "D": result.best_discriminator["metrics"]["P@5"], "D_at": result.best_discriminator.get("epoch"),
               "D_NDCG@5": result.best_discriminator["metrics"]["NDCG@5"],
               "G_NDCG@5": result.best_generator["metrics"]["NDCG@5"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


class AnchoredItemItem(ItemItemScorer):
    """An item-item scorer whose L2 pulls B toward the EASE solution it starts from, not toward zero:
    the penalty of item i is |B[:, i] - B_ease[:, i]|²/2 (diagonal excluded)."""

    def __init__(self, n_users: int, n_items: int, interactions=None, l2: float = 300.0) -> None:
        super().__init__(n_users, n_items, interactions)
        self.fit_ease(l2)
        self.register_buffer("anchor", self.weight.detach().clone())

    def penalty(self, users, items):
        columns = (self.weight.index_select(1, items) - self.anchor.index_select(1, items)).square()
        columns = columns.index_put((items, torch.arange(len(items), device=items.device)), columns.new_zeros(()))
        return self.weight.new_zeros(len(users)), columns.sum(0) / 2


ANCHORED = {  # D is an AnchoredItemItem built on the training split; G the DNS-64 start
    "ease-d-anchored-l2-10": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_exclude_positives=True, d_negatives="refresh",
                                         d_temperature=0.5, d_lr=1e-5, d_l2=10.0, **SHORT),
    "ease-d-anchored-l2-1000": IRGANConfig(dim=64, pretrain=STRONG_DNS, d_exclude_positives=True,
                                           d_negatives="refresh", d_temperature=0.5, d_lr=1e-6, d_l2=1000.0, **SHORT),
}


def _als_start(train, path: Path) -> Path:
    """iALS (the compare's defaults) fitted on ``train``, saved as an MF model file G can start from."""
    if not path.exists():
        mf = fit_ials(train.matrix, 16, 30.0, 4.0, 15, 3, seed=0, device="cpu")
        np.savez(path, user_emb=mf.user_emb.detach().numpy(), item_emb=mf.item_emb.detach().numpy(),
                 item_bias=mf.item_bias.detach().numpy(), user_ids=train.user_ids, item_ids=train.item_ids)
    return path


if __name__ == "__main__":
    main()
