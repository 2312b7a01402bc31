"""`edgecam report` on a real headless log: counts, timeline and a picture."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
from conftest import edgecam, read_jsonl


def test_report_summarises_a_real_log_and_draws_it(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    edgecam("run", "--headless", "--frames", "40", "--log", str(log), check=True)
    records = read_jsonl(log)
    with log.open("a") as f:
        f.write('{"time": "2026-01-01T00:00:0')  # what a crash mid-line leaves
    plot = tmp_path / "report.png"
    result = edgecam("report", str(log), "--plot", str(plot), check=True)
    out = result.stdout
    assert out.startswith(f"{len(records)} records from ")
    assert "1 unreadable lines skipped" in out
    for label, count in Counter(r["top"][0]["label"] for r in records).items():
        assert any(line.startswith(label[:24]) and f" {count} " in line for line in out.splitlines())
    assert "inference: median" in out and "timeline" in out
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[1] > 1000 and image.std() > 20


def test_report_of_no_records_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = edgecam("report", str(empty))
    assert result.returncode == 1 and "no records" in result.stderr
    result = edgecam("report", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 1 and "cannot be read" in result.stderr
