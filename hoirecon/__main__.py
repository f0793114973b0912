"""``python -m hoirecon``: the same as the ``hoirecon`` command."""

import sys

from hoirecon.cli import main

if __name__ == "__main__":
    sys.exit(main())
