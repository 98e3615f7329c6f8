"""Evaluation layer: closed-loop rollouts, metrics, reports and benchmarks."""
