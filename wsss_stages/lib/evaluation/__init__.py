"""Metrics, threshold sweeps, paired statistics, reports and figures."""
