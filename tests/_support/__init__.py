"""Test support importable by worker subprocesses: sample tools, servers, `wait_until`."""
