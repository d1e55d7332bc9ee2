"""``python -m ghostnet.cli``: the ghostnet command line."""
import sys

from ghostnet.cli import main

sys.exit(main())
