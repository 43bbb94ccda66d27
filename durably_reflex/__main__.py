"""`python -m durably_reflex serve|worker|dashboard ...`: the `durably-reflex` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
