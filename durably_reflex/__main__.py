"""`python -m durably_reflex serve app:durably` / `python -m durably_reflex worker app:durably`."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
