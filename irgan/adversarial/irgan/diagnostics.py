"""The GAN pathologies a history row can show: G collapsing onto a few items, D pinned at 0 or 1."""
from __future__ import annotations

COLLAPSE_COVERAGE = 0.05  # G sampling under 5% of the catalog in a G-epoch counts as collapse
COLLAPSE_ENTROPY = 0.1  # G's softmax entropy under 10% of the uniform's log(n_items): mass on a few items
PINNED_ACCURACY = 0.99  # D right (or wrong) on more than 99% of pairs has stopped giving G a signal


def diagnose(row: dict) -> list[str]:
    """The GAN pathologies visible in one history row: G's mode collapse, D's accuracy pinned."""
    found = []
    if row.get("g_entropy_share", 1.0) < COLLAPSE_ENTROPY:
        found.append(f"G's softmax collapsed onto a few items per user: entropy {row['g_entropy']:.2f} nats, "
                     f"{row['g_entropy_share']:.0%} of a uniform's")
    if row.get("g_coverage", 1.0) < COLLAPSE_COVERAGE:
        found.append(f"G collapsed: it sampled only {row['g_coverage']:.1%} of the catalog in a G-epoch")
    for side in ("real", "fake"):
        acc = row.get(f"d_acc_{side}")
        if acc is not None and (acc > PINNED_ACCURACY or acc < 1 - PINNED_ACCURACY):
            found.append(f"D's accuracy on {side} pairs is pinned: {acc:.3f}")
    return found
