from __future__ import annotations

import pickle

import pytest

from mamba_worker.errors import MambaError
from mamba_worker.prompts import (
    InvalidTemplateNameError,
    MissingVariableError,
    PromptError,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

ERRORS: list[PromptError] = [
    InvalidTemplateNameError("bad name", name="../x"),
    TemplateNotFoundError(name="system/x", version="v1", searched=["<registered>", "/p"], needed_by="child"),
    TemplateSyntaxError(name="system/x", filename="/p/v1/system/x.jinja2", lineno=3, reason="unexpected '}'"),
    TemplateRenderError.for_failure(name="t", version="v1", filename="f", lineno=1, reason="boom"),
    MissingVariableError(name="t", version="v2", variable="lang", attribute=True, filename="f", lineno=4, reason="r"),
    TemplateSecurityError(name="t", version="v1", filename=None, lineno=None, reason="unsafe"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_errors_pickle_with_their_attributes(error: PromptError) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.details == error.details
    assert vars(copy) == vars(error)


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_errors_are_mamba_errors_with_distinct_codes(error: PromptError) -> None:
    assert isinstance(error, MambaError)
    assert isinstance(error, PromptError)
    assert error.code != PromptError.code


def test_codes_are_unique() -> None:
    codes = [type(error).code for error in ERRORS]

    assert len(set(codes)) == len(codes)


def test_missing_variable_and_security_errors_are_render_errors() -> None:
    assert issubclass(MissingVariableError, TemplateRenderError)
    assert issubclass(TemplateSecurityError, TemplateRenderError)


def test_syntax_error_message_names_file_and_line() -> None:
    error = TemplateSyntaxError(name="x", filename="/p/v1/x.jinja2", lineno=7, reason="unexpected end of template")

    assert "/p/v1/x.jinja2, line 7" in str(error)
