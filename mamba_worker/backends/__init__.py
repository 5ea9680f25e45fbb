"""Model backends: pydantic-ai models for OpenAI-compatible servers, model profiles, errors.

Owns `create_model` (the one place a model string becomes a pydantic-ai model), the
OpenAI-compatible backend and its Ollama, vLLM and LM Studio factories, `OfflineModel`,
`get_profile`, and `translate_model_error` (pydantic-ai failures as `mamba_worker.errors`).

Layer 2: imports only `mamba_worker.config` and `mamba_worker.errors`, never its siblings
(tools, mcp, prompts, tokens, observability) nor anything above.
"""

from mamba_worker.backends._compat import SERVER_COMPAT, ServerCompat, ServerKind
from mamba_worker.backends._errors import translate_model_error
from mamba_worker.backends._local import (
    LMSTUDIO_BASE_URL,
    OLLAMA_BASE_URL,
    VLLM_BASE_URL,
    create_lmstudio_backend,
    create_ollama_backend,
    create_vllm_backend,
)
from mamba_worker.backends._offline import OfflineModel
from mamba_worker.backends._openai_compat import OpenAICompatibleBackend
from mamba_worker.backends._profiles import DEFAULT_PROFILE, ModelProfileInfo, get_profile
from mamba_worker.backends._resolve import ACCEPTED_FORMS, create_model

__all__ = [
    "ACCEPTED_FORMS",
    "DEFAULT_PROFILE",
    "LMSTUDIO_BASE_URL",
    "ModelProfileInfo",
    "OLLAMA_BASE_URL",
    "OfflineModel",
    "OpenAICompatibleBackend",
    "SERVER_COMPAT",
    "ServerCompat",
    "ServerKind",
    "VLLM_BASE_URL",
    "create_lmstudio_backend",
    "create_model",
    "create_ollama_backend",
    "create_vllm_backend",
    "get_profile",
    "translate_model_error",
]
