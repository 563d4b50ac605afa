"""Analyses and paper-ready plots."""
