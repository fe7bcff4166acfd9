"""``CFGANConfig``: every choice of CFGAN's training. The defaults are the authors' ML100K settings
(``parameters.py`` of the CFGAN code release: iCFGAN with the ZP scheme)."""
from __future__ import annotations

from dataclasses import dataclass

from irgan.adversarial.cfgan.nets import ACTIVATIONS
from irgan.config import SELECT_METRICS, _check_fields, _check_optional_counts, _f, _not_negative, _positive

MODES = ("item", "user")
SCHEMES = ("ZP", "ZR", "PM")


@dataclass(frozen=True)
class CFGANConfig:
    """CFGAN (Chae et al., CIKM 2018); the CLI's flags map 1:1 onto these fields.

    ``epochs`` counts outer epochs, each ``d_steps`` passes of D then ``g_steps`` passes of G: the
    authors' ``parameters.py`` draws 750 to 1,000 G passes for ML100K and their loop runs that
    number divided by ``g_steps`` (187 to 250); 250 is the top of that range and what the ECIR 2022
    study's re-implementation runs.
    """

    mode: str = _f("item", "'item': G rebuilds each item's vector of users (iCFGAN, the authors' ML100K choice); 'user': each user's vector of items")
    scheme: str = _f("ZP", "'ZR': zero-reconstruction loss on sampled unobserved entries; 'PM': partial masking (D also sees G's output on sampled unobserved entries); 'ZP': both")
    epochs: int = _f(250, "outer epochs, each d_steps passes of D then g_steps passes of G over every vector")
    g_hidden: int = _f(400, "width of G's hidden layers")
    g_layers: int = _f(1, "G's hidden layers")
    d_hidden: int = _f(125, "width of D's hidden layers")
    d_layers: int = _f(1, "D's hidden layers")
    activation: str = _f("sigmoid", "activation of G's and D's hidden layers ('sigmoid' or 'tanh'); both output layers are linear")
    g_l2: float = _f(1e-3, "G's L2: this times half the sum of squares of every G weight and bias, added to each batch's loss")
    d_l2: float = _f(0.0, "D's L2, as for G")
    g_lr: float = _f(1e-4, "G's Adam learning rate")
    d_lr: float = _f(1e-4, "D's Adam learning rate")
    g_batch_size: int = _f(32, "vectors per G update")
    d_batch_size: int = _f(64, "vectors per D update")
    g_steps: int = _f(4, "G passes per outer epoch")
    d_steps: int = _f(2, "D passes per outer epoch")
    zr_ratio: float = _f(0.7, "ZR: share of each vector's unobserved entries sampled each epoch and pushed to 0")
    pm_ratio: float = _f(0.7, "PM: share of each vector's unobserved entries sampled each epoch where D sees G's output")
    zr_coefficient: float = _f(0.03, "ZR: weight of the zero-reconstruction loss (the paper's alpha)")
    adversary: bool = _f(True, "train against D; False: G alone, fitting its masked output to the real vector (squared error) plus the ZR term, the same G without the game")
    select_metric: str = _f("NDCG@10", "validation metric that picks the epoch (the ECIR 2022 study: NDCG@10)")
    eval_every: int = _f(5, "outer epochs between validation checks (the ECIR 2022 study: 5)")
    patience: int | None = _f(5, "validation checks without a gain before training stops (the ECIR 2022 study: 5; None: never)")

    def __post_init__(self) -> None:
        _check_optional_counts(self, ("patience",))
        _check_fields(self, at_least_one=("g_hidden", "g_layers", "d_hidden", "d_layers", "g_batch_size",
                                          "d_batch_size", "eval_every"), counts=("epochs", "g_steps", "d_steps"))
        choices = {"mode": MODES, "scheme": SCHEMES, "activation": tuple(ACTIVATIONS), "select_metric": SELECT_METRICS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("zr_ratio", "pm_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        _positive(self, ("g_lr", "d_lr"))
        _not_negative(self, ("g_l2", "d_l2", "zr_coefficient"))

    @property
    def zero_reconstruction(self) -> bool:
        """Whether G's loss has the ZR term (schemes ZR and ZP)."""
        return self.scheme in ("ZR", "ZP")

    @property
    def partial_masking(self) -> bool:
        """Whether D sees G's output on sampled unobserved entries (schemes PM and ZP)."""
        return self.scheme in ("PM", "ZP")


__all__ = ["CFGANConfig", "MODES", "SCHEMES"]
