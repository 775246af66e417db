"""``python -m tfs_devserver``: the same entry point as the ``tfs-devserver`` console script."""

import sys

from tfs_devserver.main import main

sys.exit(main())
