"""Command-line front end of tfcyclegan (installed as `tfcyclegan_cli`)."""

import os

# TensorFlow's C++ INFO/WARNING lines drown the CLI's own output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
