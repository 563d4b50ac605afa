"""Analyses and paper-ready plots (the experiment runner that uses them is :mod:`convrnn.experiment`)."""
