"""Evaluation: the benchmarks' own rules, scoring of any predictions, and occlusion scores."""
