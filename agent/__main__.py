"""``python -m agent`` is ``tfs-agent``."""

from agent.cli import main

main()
