"""The exact machinery: arbitrary-precision reference gradients (mpmath, and Arb through
python-flint), computed at verified precision and correctly rounded to the float dtype.
"""
