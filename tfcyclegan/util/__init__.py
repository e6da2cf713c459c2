"""Utilities every layer may use: errors (one line, no traceback), report (notes to stderr,
results to stdout), fsutil (files written whole or not at all), lazy (package attributes on
first use). Stdlib only; nothing here imports another tfcyclegan package.
"""
