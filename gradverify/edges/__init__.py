"""The edges: the command line, options and configuration, CI outputs, the pytest plugin and
the adapters for torch, jax and textbook networks. Nothing below this layer imports them.
"""
