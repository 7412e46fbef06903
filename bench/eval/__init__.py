"""Accuracy evaluation and training: datasets, preprocessing, protocols, metrics, recipes.

`segbench eval` (evaluate.py) and `segbench train` (train.py) are the entry points; the rest are their parts,
one job per module.
"""
