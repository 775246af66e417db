"""``python -m agent.devserver``: the same entry point as the ``tfs-devserver`` console script."""

import sys

from agent.devserver.main import main

sys.exit(main())
