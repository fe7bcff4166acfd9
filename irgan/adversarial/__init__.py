"""Adversarial recommenders beside IRGAN: CFGAN and APR."""
