"""``tensorflow.serving.MonitoringConfig``, built at run time.

Why: the tensorflow-serving-api wheel ships no ``monitoring_config_pb2``, but ``--monitoring_config_file`` is
a text proto of that message (``prometheus_config { enable: true path: "..." }``). The two tiny messages are
declared here in a private descriptor pool (so they never clash with a generated module loaded elsewhere).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _build() -> tuple[Any, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_OPTIONAL,
        type_name=".tensorflow.serving.PrometheusConfig",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")),
        get(pool.FindMessageTypeByName("tensorflow.serving.PrometheusConfig")),
    )


MonitoringConfig, PrometheusConfig = _build()
