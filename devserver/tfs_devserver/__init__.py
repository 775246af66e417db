"""tfs-devserver: a TensorFlow-backed stand-in for the stock ``tensorflow_model_server``.

Why it exists: the stock binary cannot be installed where we build and test, yet everything the agent does is
a conversation with it. This package reproduces the stock server's observable behaviour (B1–B24 of
docs/tfserving-behaviour.md: flags, start-up rules, the file-system source, the availability-preserving
manager, ReloadConfig and label rules, the status codes and message texts, REST and Prometheus, and running
each version as a SavedModelBundle Session) closely enough that an agent proven against it works against the
real one. It and the agent never import each other (see .importlinter); docs/devserver.md says what it
reproduces and where it differs.

Layout, from the bottom up: ``status`` (error codes), ``tensors`` (TensorProto <-> numpy), ``flags``,
``dtypes``, ``config`` (text protos), ``monitor`` (servable states), ``servable`` (one loaded SavedModel in a
Session), ``inference`` (Predict), ``examples`` (Classify/Regress/MultiInference), ``warmup``, ``manager``
(aspired versions, loads/unloads), ``source`` (file-system polling), ``core`` (ReloadConfig, labels, request
routing), ``grpc_service``, ``rest``, ``monitoring``, ``server``, ``main``.
"""
