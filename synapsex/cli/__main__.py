"""``python -m synapsex.cli``: the same as the ``synapsex`` command."""

import sys

from synapsex.cli import main

sys.exit(main())
