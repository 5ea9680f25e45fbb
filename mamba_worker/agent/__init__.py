"""The spec's `Agent`: a pydantic-ai agent with a kept conversation, usage, cost and retries.

Layer 4: may import config, errors, the capability packages and context; never workflows,
durable or cli.
"""

from mamba_worker.agent._agent import Agent
from mamba_worker.agent._config import AgentConfig
from mamba_worker.agent._event_loop import close_thread_event_loop, run_blocking, thread_event_loop
from mamba_worker.agent._model import ResilientModel

__all__ = ["Agent", "AgentConfig", "ResilientModel", "close_thread_event_loop", "run_blocking", "thread_event_loop"]
