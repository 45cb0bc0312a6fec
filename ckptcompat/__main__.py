"""``python -m ckptcompat`` runs the command line."""

import sys

from ckptcompat.cli import main

sys.exit(main())
