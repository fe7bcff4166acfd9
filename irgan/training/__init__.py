"""Fits of the baselines from the reproducibility literature (Ferrari Dacrema et al., TOIS 2021;
Pérez Maurera et al., ECIR 2022), one module each, on a training matrix X (csr, n_users x n_items):

- ``irgan.training.slim``: SLIM ElasticNet, one non-negative regression per item (sparse W);
- ``irgan.training.svd``: PureSVD, a truncated SVD of X (a ``MatrixFactorization``);
- ``irgan.training.rp3beta``: RP3beta, a 3-step random walk penalising popular items (sparse W).

An item-item fit returns W as a scipy csr_matrix (n_items, n_items), scores X W. The package
imports none of its modules, so that importing one does not pay for the others' libraries.
"""
