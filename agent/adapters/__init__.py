"""The outside world behind narrow ports: buckets (``sources``) and TF Serving (``tfserving``).

Each adapter maps its library's errors to the agent's own exceptions in one place."""
