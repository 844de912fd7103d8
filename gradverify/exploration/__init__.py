"""Exploration: Hypothesis strategies for networks and inputs, the search for a failing
problem, and the scan of a dtype's float lattice for where the output delta breaks.
"""
