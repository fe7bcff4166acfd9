"""What the models share to train, one module each, on a training matrix X (csr, n_users x n_items):

- ``sampling``: positives, uniform and DNS negatives, softmax draws, the importance-sampling mixture;
- ``objectives``: autograd losses for any scorer (BPR, D's pointwise loss, G's policy gradient);
- ``fast_mf``: the same for MF with hand-derived gradients and row-sparse SGD, tested equal to autograd;
- ``updates``: one player's step on either path; ``bpr``: BPR / DNS-BPR (IRGAN's pretraining, APR's start);
- ``als``: implicit ALS by conjugate gradient;
- the reproducibility literature's baselines (Ferrari Dacrema et al., TOIS 2021; Pérez Maurera et
  al., ECIR 2022): ``slim`` (SLIM ElasticNet, one non-negative regression per item, sparse W),
  ``svd`` (PureSVD, a truncated SVD of X) and ``rp3beta`` (a 3-step random walk penalising popular
  items, sparse W). An item-item fit returns W as a scipy csr_matrix (n_items, n_items); X W scores.

The package imports none of its modules, so that importing one does not pay for the others' libraries.
"""
