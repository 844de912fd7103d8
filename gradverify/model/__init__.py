"""The model: float dtypes and their lattices, activations and losses (float and exact forms),
and the network and problem being checked. Imports nothing else from gradverify.
"""
