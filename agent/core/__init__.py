"""The pure core: plain values, the planner, the cron window, golden-file parsing and the validation checks.

No I/O and no protobuf: every function here is a function of its arguments, tested with plain values."""
