"""The engine: the implementation protocol and built-ins, the harness that calls an
implementation (in-process or isolated), the float references (finite differences), the
comparison and its rounding floor, the verdict for one problem, the diagnosis and the results.
"""
