"""Issue 13: does an adversary help a strong matrix factorisation trained on the whole catalog?

D is an MF (64 dimensions, item biases) trained full-batch with Adam on a logistic loss over every
item: each user's positives against all the items it has no positive for, the negatives weighted
by a distribution q (total weight ``w`` x the user's positive count). Without an adversary q is
uniform; that model alone scores near iALS on validation. The adversaries:

- ``lam``/``tau``: q = (1 - lam) uniform + lam softmax(D / tau) over the user's non-positives. That
  softmax is G's best response in IRGAN's game with an entropy bonus (it maximises
  E_G[f_D / tau] + H(G)), so this is the game with G solved exactly at every step; it is also the
  self-adversarial weighting of RotatE (Sun et al., ICLR 2019).
- ``skip``: G's ``skip`` highest-scored items get no weight (protection against false negatives,
  the items most likely to be unlabelled positives).
- ``eps``: adversarial perturbations of the embeddings (APR, He et al., SIGIR 2018): each step also
  fits the loss at embeddings moved by ``eps`` along their gradient, normalised row by row
  (``irgan.adversarial.apr.row_perturbation``; APR itself, on BPR, is ``APRRecommender``).

Each configuration trains on u1.base less a 10% validation split (seed 0) and reports the best
validation P@5 (checked every 10 epochs) and its epoch; no test figure is looked at.

    python -m benchmarks.research_full_catalog --data-dir DATA [--only NAME[,NAME...]]
    python -m benchmarks.research_full_catalog --data-dir DATA --epochs 20   # a smoke run
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from irgan.adversarial.apr import row_perturbation
from irgan.data import load_dataset, validation_split
from irgan.metrics import evaluate

CONFIGS: dict[str, dict] = {
    "uniform": {},
    "uniform-l2-2e-3": {"l2": 2e-3},
    "uniform-w3": {"w": 3.0},
    "g-best-response": {"lam": 1.0, "tau": 1.0},
    "g-best-response-soft": {"lam": 0.3, "tau": 5.0},
    "g-best-response-mix": {"lam": 0.7, "tau": 2.0},
    "g-best-response-skip5": {"lam": 0.5, "tau": 1.0, "skip": 5},
    "g-best-response-skip20": {"lam": 0.5, "tau": 1.0, "skip": 20},
    "g-best-response-skip50": {"lam": 0.5, "tau": 1.0, "skip": 50},
    "apr-0.01": {"l2": 2e-3, "eps": 0.01},
    "apr-0.1": {"l2": 2e-3, "eps": 0.1},
}
EPOCHS = 300  # full-batch epochs of every configuration


def fit(X: torch.Tensor, score, dim: int = 64, lam: float = 0.0, tau: float = 1.0, w: float = 1.0,
        l2: float = 1e-3, lr: float = 0.01, epochs: int = EPOCHS, skip: int = 0, eps: float = 0.0,
        seed: int = 0, every: int = 10) -> tuple[float, int]:
    """Train on the dense (n_users, n_items) 0/1 matrix ``X``; the best ``score(scores)`` and its epoch."""
    n_users, n_items = X.shape
    rng = torch.Generator().manual_seed(seed)
    U = (torch.randn(n_users, dim, generator=rng) * 0.05).requires_grad_()
    V = (torch.randn(n_items, dim, generator=rng) * 0.05).requires_grad_()
    b = torch.zeros(n_items, requires_grad=True)
    optimizer = torch.optim.Adam([U, V, b], lr=lr)
    counts = X.sum(1, keepdim=True)
    uniform = (1 - X) / (1 - X).sum(1, keepdim=True)
    best = (-1.0, 0)
    for epoch in range(epochs):
        S = U @ V.T + b
        with torch.no_grad():
            q = uniform
            if lam > 0:
                logits = (S / tau).masked_fill(X > 0, float("-inf"))
                if skip:
                    logits = logits.scatter(1, logits.topk(skip, 1).indices, float("-inf"))
                q = (1 - lam) * uniform + lam * torch.softmax(logits, 1)

        def loss(S: torch.Tensor) -> torch.Tensor:
            return (-(X * F.logsigmoid(S)).sum() - w * (counts * q * F.logsigmoid(-S)).sum()) / n_users
        total = loss(S)
        if eps > 0:
            gU, gV = torch.autograd.grad(total, [U, V], retain_graph=True)
            total = total + loss((U + row_perturbation(gU, eps)) @ (V + row_perturbation(gV, eps)).T + b)
        total = total + l2 * (U.pow(2).sum() + V.pow(2).sum())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        if (epoch + 1) % every == 0:
            with torch.no_grad():
                figure = score(U @ V.T + b)
            if figure > best[0]:
                best = (figure, epoch + 1)
    return best


def main(argv: list[str] | None = None) -> list[dict]:
    """Fit each named configuration and print its JSON row; the rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--only", default=",".join(CONFIGS))
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="full-batch epochs of every configuration (validation checked every 10)")
    args = parser.parse_args(argv)
    data = load_dataset("ml-100k", data_dir=args.data_dir, split="u1", seed=0)
    train, validation = validation_split(data.train, 0.1, 0)
    X = torch.tensor(train.matrix.toarray(), dtype=torch.float32)

    def score(scores: torch.Tensor) -> float:
        return evaluate(scores.numpy(), train.matrix, validation.matrix)["P@5"]
    rows = []
    for name in args.only.split(","):
        start = time.perf_counter()
        figure, epoch = fit(X, score, epochs=args.epochs, **CONFIGS[name])
        rows.append({"name": name, **CONFIGS[name], "validation P@5": round(figure, 4), "epoch": epoch,
                     "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
