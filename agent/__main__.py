"""``python -m agent`` is ``tfs-agent``."""

from agent.service.cli import main

main()
