"""``python -m ckptcompat`` runs the command line."""

import sys

from ckptcompat.cli.commands import main

sys.exit(main())
