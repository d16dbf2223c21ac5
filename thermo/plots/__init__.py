"""Plots of a results folder: figures (the PNGs) drawn from data (what
results.h5 holds). Matplotlib is imported by figures only."""
