"""`python -m tests.oracle --worlds N --seed S [--modes a,b]`: exit 1 if any false safe."""

import sys

from tests.oracle.runner import main

if __name__ == "__main__":
    sys.exit(main())
