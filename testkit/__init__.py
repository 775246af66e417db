"""The test kit: what tests and benchmarks share, importable from the repository root, not shipped in the
agent's wheel (ADR 19). Tests and benchmarks import it; it imports neither, and they never import each other
(import-linter contracts in .importlinter).

Fakes of our ports (tested themselves in tests/unit/test_fakes_serving.py; the one simulated ``Clock`` is
``agent.infra.clock.ManualClock``, which the fleet simulation uses too):
    fakes_serving   FakeServing, an in-memory TF Serving behind ``ServingControl``
    fakes_sources   InMemorySource, an in-memory bucket behind ``ModelSource``
Real processes as fixtures:
    servers         tfs-devserver or the stock binary (``TFS_BINARY``)
    gcs             fake-gcs-server and a fault-injecting loopback proxy
    agentproc       the agent as a process (``tfs-agent run``)
    stack           the three together on a file:// or gs:// bucket
SavedModels (built with TensorFlow, in the test process only):
    savedmodels, faulty_models, dtypes
The fault catalogue and the measuring harness (run long by ``python -m benchmarks.faults``):
    faults, faultworld, harness
Waiting and ports:
    poll            poll_until, the one deadline-poll helper (monotonic clock)
    ports           free_port, retry_on_bind_failure (prefer servers that bind port 0)
"""
