"""irgan: IRGAN (Wang et al., SIGIR 2017) and its baselines for implicit-feedback recommendation.

    from irgan import IRGAN, load_dataset, evaluate
    data = load_dataset("ml-100k")
    model = IRGAN(epochs=3).fit(data.train)
    evaluate(model.model_, data.train, data.test)
"""
from irgan.config import BPRConfig, IRGANConfig
from irgan.data import Interactions, load_dataset
from irgan.estimator import IRGAN, BPRRecommender, PopularityRecommender
from irgan.metrics import evaluate
from irgan.models import Discriminator, Generator, MatrixFactorization, register_scorer
from irgan.pipeline import run_recipe
from irgan.recommender import ranking_scorer
from irgan.trainer import fit_irgan

__all__ = ["BPRConfig", "BPRRecommender", "Discriminator", "Generator", "IRGAN", "IRGANConfig", "Interactions",
           "MatrixFactorization", "PopularityRecommender", "evaluate", "fit_irgan", "load_dataset", "ranking_scorer",
           "register_scorer", "run_recipe"]
