"""``python -m ddfast`` runs the command-line interface."""
import sys

from ddfast.cli import main

sys.exit(main())
