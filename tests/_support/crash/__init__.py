"""Crash-test support that worker subprocesses import: gates, scripted tools and model, worker processes.

- `tests._support.crash.gates`: file-based gates. A step's model call or tool blocks while a
  ``hold.<point>`` file exists and records every entry (with its pid) in ``entered.<point>``, so a
  test can SIGKILL a worker exactly mid-think or mid-act without sleeping.
- `tests._support.crash.workflow`: the module workers import (``MAMBA_RUNTIME__WORKFLOW_MODULES``);
  it registers the scripted model ``crash-scripted`` and the tools ``lookup`` (idempotent) and
  ``append_note`` (not idempotent; it appends to a file, so a double execution shows).
- `tests._support.crash.workers`: real ``celery -A mamba_worker worker`` subprocesses, killed
  with SIGKILL (their whole process group).
"""
