"""``tfs-agent demo``: the whole job on embedded defaults — a file:// bucket, tfs-devserver, the agent and a
load generator — proving a good version goes live with zero failed requests and a bad one is rejected."""
