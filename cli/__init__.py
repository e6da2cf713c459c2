"""Command-line front end of tfcyclegan (installed as `tfcyclegan_cli`)."""
