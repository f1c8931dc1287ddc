"""Evaluation (the baseline and evaluate stages): batched inference, metrics, calibration, figures and outputs,
baselines, ensembles, and the pull-request report."""
