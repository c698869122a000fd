"""``python -m pretraining``: see pretraining/cli.py."""
import sys

from .cli import main

sys.exit(main())
