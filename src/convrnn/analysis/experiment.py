"""Moved: the experiment runner is :mod:`convrnn.experiment` (the app layer, beside train and evaluate).

This re-export keeps ``from convrnn.analysis.experiment import ...`` working for existing users; it is the
one place :mod:`convrnn.analysis` reaches up, and nothing in the library imports it.
"""
from ..experiment import (METRICS, AnalysisSettings, ExperimentConfig, count_params, load_experiment,
                          match_param_count, report_table, run_configs, run_experiment, summarize, t_quantile_975,
                          write_experiment_report)

__all__ = ["ExperimentConfig", "AnalysisSettings", "METRICS", "load_experiment", "run_experiment",
           "summarize", "t_quantile_975", "count_params", "match_param_count", "run_configs", "report_table",
           "write_experiment_report"]
