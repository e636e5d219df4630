"""TFX's Pusher component running this package's executor (executor.py)."""
from __future__ import annotations

from tfx import v1 as tfx
# tfx.v1 has no ExecutorSpec; TFX's custom-component guide uses this one.
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


class Pusher(tfx.components.Pusher):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
