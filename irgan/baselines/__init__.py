"""Baselines that also serve as IRGAN's pretraining: popularity, BPR, and DNS-BPR."""
from irgan.baselines.bpr import BPRConfig, fit_bpr
from irgan.baselines.popularity import Popularity

__all__ = ["BPRConfig", "fit_bpr", "Popularity"]
