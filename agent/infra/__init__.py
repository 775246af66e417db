"""Plumbing every stage uses: settings, the state file, clocks, crash-safe writes, log lines and metrics."""
