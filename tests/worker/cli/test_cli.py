from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mamba_worker.cli import cli


def _mamba(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from mamba_worker.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_config_show_masks_secrets(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__API_KEY", "sk-very-secret-value")
    result = CliRunner().invoke(cli, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model_backend"]["api_key"] == "**********"
    assert data["runtime"]["database_url"] == "**********"
    assert "sk-very-secret-value" not in result.output


def test_config_show_text_lists_every_section(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    for section in ("model_backend", "logging", "retry", "context", "runtime"):
        assert f"[{section}]" in result.output


def test_run_json_on_the_offline_model(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--json", "What is 2 + 2?"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["status"] == "succeeded"
    assert payload["output"] == "2 + 2 = 4"
    assert payload["usage"]["requests"] == 1
    assert payload["cost_usd"] == 0.0
    assert (in_tmp_cwd / ".mamba" / "mamba.db").exists()


@pytest.mark.slow
def test_the_main_job_runs_without_the_postgres_extra(tmp_path: Path) -> None:
    # The README's main command installs no extras: psycopg (the ``postgres`` extra) is absent.
    # Blocking its import here stands in for that install; the embedded default must not need it.
    code = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg_pool'] = None\n"
        "from mamba_worker.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "--json", "What is 2 + 2?"],
        cwd=tmp_path,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "succeeded"


def test_run_names_the_run_id_and_how_to_resume(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "What is 6 * 7?"])
    assert result.exit_code == 0, result.output
    assert "mamba resume " in result.stderr
    assert "6 * 7 = 42" in result.stdout
    assert "offline model" in result.stderr


def test_resume_of_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    completed = _mamba("resume", "no-such-run", cwd=tmp_path)
    assert completed.returncode == 2
    assert "run_not_found" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_answer_of_unknown_run_is_one_clear_error(tmp_path: Path) -> None:
    completed = _mamba("answer", "no-such-run", "--decision", "skip", cwd=tmp_path)
    assert completed.returncode == 2
    assert "run_not_found" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_answer_of_a_run_that_is_not_waiting_is_refused(in_tmp_cwd: Path) -> None:
    first = CliRunner().invoke(cli, ["run", "--json", "What is 1 + 1?"])
    run_id = json.loads(first.stdout.strip().splitlines()[-1])["run_id"]
    completed = _mamba("answer", run_id, "--decision", "rerun", cwd=in_tmp_cwd)
    assert completed.returncode == 2
    assert "only a waiting run can be answered" in completed.stderr


def test_resume_of_a_finished_run_is_refused(in_tmp_cwd: Path) -> None:
    first = CliRunner().invoke(cli, ["run", "--json", "What is 1 + 1?"])
    run_id = json.loads(first.stdout.strip().splitlines()[-1])["run_id"]
    completed = _mamba("resume", run_id, cwd=in_tmp_cwd)
    assert completed.returncode == 2
    assert "nothing to resume" in completed.stderr


def test_bad_setting_is_one_clear_error(tmp_path: Path) -> None:
    completed = _mamba("run", "hi", cwd=tmp_path, env={"MAMBA_RUNTIME__LEASE_SECONDS": "soon"})
    assert completed.returncode == 2
    assert "MAMBA_RUNTIME__LEASE_SECONDS" in completed.stderr
    assert "Traceback" not in completed.stderr
