"""tfs-devserver: a TensorFlow-backed stand-in for the stock ``tensorflow_model_server``.

Why it exists: the stock binary cannot be installed where we build and test, yet everything the agent does is
a conversation with it. This package reproduces the stock server's observable behaviour (TFSERVING.md B1–B22:
flags, start-up rules, the file-system source, the availability-preserving manager, ReloadConfig and label
rules, the status codes and message texts, REST and Prometheus) closely enough that an agent proven against it
works against the real one. The agent core never imports it (see .importlinter).

Layout, from the bottom up: ``status`` (error codes), ``tensors`` (TensorProto <-> numpy), ``flags``,
``config`` (text protos), ``monitor`` (servable states), ``servable`` (one loaded SavedModel), ``warmup``,
``manager`` (aspired versions, loads/unloads), ``source`` (file-system polling), ``core`` (ReloadConfig,
labels, request routing), ``inference`` (Predict/Classify/Regress), ``grpc_service``, ``rest``,
``monitoring``, ``main``.
"""
