"""CFGAN (Chae et al., CIKM 2018), one module per part: ``config`` (``CFGANConfig``, the authors'
ML100K settings), ``nets`` (G and D, MLPs over purchase vectors), ``scorer`` (G serving as a
scorer), ``game`` (the training loop) and ``estimator`` (``CFGANRecommender``)."""
from irgan.adversarial.cfgan.config import CFGANConfig
from irgan.adversarial.cfgan.estimator import CFGANRecommender
from irgan.adversarial.cfgan.game import CFGANFit, train_cfgan
from irgan.adversarial.cfgan.scorer import CFGANScorer

__all__ = ["CFGANConfig", "CFGANFit", "CFGANRecommender", "CFGANScorer", "train_cfgan"]
