"""Measurement: rates with confidence intervals, result records, sweeps, plots."""
