"""``python -m bpnetz`` runs the CLI."""

import sys

from bpnetz.cli import main

sys.exit(main())
