"""IRGAN (Wang et al., SIGIR 2017): ``players`` (G and D around any scorer), ``game`` (the
adversarial loop), ``recipe`` (split, pretrain, play, select, refit, test) and ``diagnostics``
(the GAN pathologies a history row shows). Its estimator is ``irgan.estimator.IRGAN``."""
