"""The test kit: what tests and benchmarks share, importable from the repository root, not shipped in the
agent's wheel (ADR 20). Tests and benchmarks import it; it imports neither, and they never import each other
(import-linter contracts in .importlinter).

Fakes of our ports (tested themselves in tests/unit/test_fakes_serving.py; the one simulated ``Clock`` is
``agent.infra.clock.ManualClock``, which the fleet simulation uses too):
    fakes_serving   FakeServing, an in-memory TF Serving behind ``ServingControl``
    fakes_sources   InMemorySource, an in-memory bucket behind ``ModelSource``
    fakes_prometheus  a ``MetricQuery`` answering from a table
Real processes as fixtures:
    servers         tfs-devserver or the stock binary (``TFS_BINARY``)
    gcs             fake-gcs-server; proxy: a fault-injecting loopback HTTP proxy
    emulators       moto (S3) and Azurite (Azure Blob); stores: one bucket per scheme for contract tests
    pubsub          the Pub/Sub emulator; prometheus: Debian's prometheus with queries
    agentproc       the agent as a process (``tfs-agent run``)
    stack           the three together on a file:// or gs:// bucket
    fleet           N (agent + tfs-devserver) pods on one bucket, the fleet records read back;
                    fleetrace: one pod's side of a slot race as its own process
SavedModels (built with TensorFlow, in the test process only):
    savedmodels, faulty_models, dtypes; sdk_probe: what each cloud SDK costs to import
The fault catalogue and the measuring harness (run long by ``python -m benchmarks.faults``):
    faults, faultworld, harness
Waiting and ports:
    poll            poll_until, the one deadline-poll helper (monotonic clock)
    ports           free_port, retry_on_bind_failure (prefer servers that bind port 0)
"""
