"""Small pieces every layer uses: the numpy floating-point error state around calls, and
the one progress display.
"""
