"""``python -m robench`` runs the command line."""

from robench.cli import run

run()
