"""SIGHUP re-reads the config and restarts the run in place; a bad new config keeps the old one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import wait_for


def records(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


def test_sighup_reloads_the_config_and_sigterm_ends_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    config = tmp_path / "edgecam.toml"
    config.write_text(f'headless = true\ntopk = 2\nlog = "{log}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    process = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: len(records(log)) >= 5, 60)
        config.write_text(f'headless = true\ntopk = 3\nlog = "{log}"\n')
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: any(len(r["top"]) == 3 for r in records(log)), 60)

        config.write_text("topk = 'lots'\n")  # a broken config: the run goes on as it was
        process.send_signal(signal.SIGHUP)
        count = len(records(log))
        wait_for(lambda: len(records(log)) >= count + 5, 60)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "keeping the previous configuration" in stderr and "key 'topk'" in stderr
    lines = log.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole
    sizes = [len(json.loads(line)["top"]) for line in lines]
    assert sizes[0] == 2 and sizes[-1] == 3
    assert sizes == sorted(sizes)
