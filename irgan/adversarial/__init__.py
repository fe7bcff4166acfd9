"""The adversarial recommenders, one home each: ``irgan/`` (IRGAN's players, game, recipe and
diagnostics), ``cfgan/`` (CFGAN's networks, game, scorer and estimator) and ``apr.py`` (APR on
matrix factorisation). What they share (scorers, samplers, objectives, BPR) lives in
``irgan.models`` and ``irgan.training``."""
