"""Utilities every layer may use: errors (one line, no traceback), report (notes to stderr,
results to stdout), fsutil (files written whole or not at all, SHA-256), lazy (package
attributes on first use), runmarker (how a run directory is told from a folder of images). Stdlib only; nothing here imports another tfcyclegan package.
"""
