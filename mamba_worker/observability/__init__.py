"""Logging, secret redaction, request tracing and OpenTelemetry.

The only package that configures logging handlers (`setup_logging`); every other module just calls
``logging.getLogger(__name__)``. May import `mamba_worker.config` and `mamba_worker.errors`, and
none of its layer-2 siblings (tools, mcp, prompts, tokens, backends) or anything above.
"""

from mamba_worker.observability._logging import LOGGER_NAME, JsonFormatter, TextFormatter, setup_logging
from mamba_worker.observability._otel import (
    ATTR_MODEL,
    ATTR_PROMPT,
    ATTR_PROMPT_LENGTH,
    SPAN_AGENT_RUN,
    OTelIntegration,
    get_otel_integration,
)
from mamba_worker.observability._redaction import (
    MASK,
    RedactingFilter,
    Redactor,
    SecretRegistry,
    redact,
    register_model_secrets,
    register_secret,
    register_secret_str,
)
from mamba_worker.observability._tracing import RequestTracer, Span, SpanError, SpanStatus, Trace

__all__ = [
    "ATTR_MODEL",
    "ATTR_PROMPT",
    "ATTR_PROMPT_LENGTH",
    "JsonFormatter",
    "LOGGER_NAME",
    "MASK",
    "OTelIntegration",
    "RedactingFilter",
    "Redactor",
    "RequestTracer",
    "SPAN_AGENT_RUN",
    "SecretRegistry",
    "Span",
    "SpanError",
    "SpanStatus",
    "TextFormatter",
    "Trace",
    "get_otel_integration",
    "redact",
    "register_model_secrets",
    "register_secret",
    "register_secret_str",
    "setup_logging",
]
