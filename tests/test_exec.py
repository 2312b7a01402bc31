"""--exec with real commands: one run per event with the event on stdin and in the environment,
failures warned once per burst, a hanging command killed (its whole process group) at
--exec-timeout while inference keeps the source's pace and the failures are counted, and a missing
command refused at start."""
from __future__ import annotations

import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import edgecam, read_jsonl, wait_for

VARIABLES = ("EDGECAM_LABEL", "EDGECAM_SCORE", "EDGECAM_EVENT", "EDGECAM_CAMERA")
# Appends the event it gets on stdin, with those variables, as one line to argv[1]; fails (exit
# status 1) unless the label is argv[2].
RECORDER = ("import json, os, sys; event = json.load(sys.stdin); "
            f"event['env'] = {{k: os.environ.get(k) for k in {VARIABLES}}}; "
            "open(sys.argv[1], 'a').write(json.dumps(event) + '\\n'); "
            "sys.exit(event['event']['label'] != sys.argv[2])")


def test_each_event_runs_the_command_once_with_the_event(tmp_path: Path) -> None:
    runs, log = tmp_path / "runs.jsonl", tmp_path / "events.jsonl"
    # 200 demo frames: the cat, the espresso (frame 90 on), the rocket (180 on). Smoothed events
    # come at least a few frames apart: each finds the command idle, none is skipped.
    command = shlex.join([sys.executable, "-c", RECORDER, str(runs), "espresso"])
    result = edgecam("run", "--headless", "--frames", "200", "--events", "change", "--smooth", "5",
                     "--log", str(log), "--exec", command, check=True)
    events, seen = read_jsonl(log), read_jsonl(runs)
    assert len(events) >= 3
    assert [{k: v for k, v in run.items() if k != "env"} for run in seen] == events
    for run in seen:
        assert run["env"] == dict(zip(VARIABLES, (run["event"]["label"], str(run["event"]["score"]),
                                                  "change", run["source"]), strict=True))
    # Each run of failures (labels other than espresso) costs one warning; a success ends it.
    bursts = sum(1 for ok, _ in itertools.groupby(e["event"]["label"] == "espresso" for e in events)
                 if not ok)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert bursts >= 2 and len(warnings) == bursts
    assert all("exited with status 1" in line for line in warnings)


def metric(base: str, sample: str) -> float:
    """The value of `sample` (a metric's name and labels) on the preview's /metrics; 0 if absent."""
    with urllib.request.urlopen(base + "metrics", timeout=5) as response:
        found = re.search(rf"^{re.escape(sample)} (\S+)$", response.read().decode(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def processes_running(*argv: str) -> list[str]:
    """The ids of the processes whose command line is `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == wanted:
                found.append(cmdline.parent.name)
        except OSError:  # the process ended meanwhile
            pass
    return found


def test_a_hanging_command_is_killed_at_its_timeout_and_inference_keeps_pace(tmp_path: Path) -> None:
    starts, log, stderr = tmp_path / "starts", tmp_path / "frames.jsonl", tmp_path / "stderr"
    marker = str(900000 + os.getpid() % 99999)  # how long the sleep would last: unique to this test
    # `echo` after the sleep keeps sh from exec'ing it: killing only sh would leave the sleep behind.
    hang = f"sh -c 'echo started >> {starts}; sleep {marker}; echo finished >> {starts}'"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.Popen(
        [sys.executable, "-m", "edgecam", "run", "--headless", "--duration", "120", "--log", str(log),
         "--exec", hang, "--exec-timeout", "0.5", "--preview", "127.0.0.1:0"],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr.open("w"))
    try:
        base = wait_for(lambda: re.search(r"web preview at (\S+)", stderr.read_text()), 60,
                        "the preview").group(1)
        wait_for(lambda: metric(base, 'edgecam_errors_total{output="exec"}') >= 3, 60,
                 "three runs killed at the timeout")
        assert metric(base, "edgecam_exec_skipped_total") > 0  # frames came while it hung
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == 0
    finally:
        run.kill()
        run.wait()
        try:
            wait_for(lambda: not processes_running("sleep", marker), 10, "no sleep left behind")
        finally:  # a failing test leaves none behind either
            for pid in processes_running("sleep", marker):
                os.kill(int(pid), signal.SIGKILL)
    lines = starts.read_text().split()
    assert len(lines) >= 3 and set(lines) == {"started"}  # each run killed before it finished
    warnings = [line for line in stderr.read_text().splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "--exec sh ran longer than --exec-timeout (0.5 s)" in warnings[0]
    # The source numbers every frame it captures at 30 fps; a blocked loop would leave gaps.
    frames = [record["frame"] for record in read_jsonl(log)]
    assert len(frames) >= 0.8 * (frames[-1] - frames[0] + 1), "inference did not keep the pace"


def test_a_missing_command_is_one_line_at_start(tmp_path: Path) -> None:
    result = edgecam("run", "--headless", "--frames", "5", "--exec", str(tmp_path / "no-such-hook"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [f"edgecam: error: --exec: command '{tmp_path / 'no-such-hook'}' not found or "
                      "not executable: give its full path, or install it"]


def test_every_frame_runs_it_and_a_frame_with_no_label_passing_has_empty_variables(tmp_path: Path) -> None:
    """--events every with --only: the cat frames have no label left, and the command still gets
    them, with EDGECAM_LABEL and EDGECAM_SCORE empty (it used to fail with a traceback)."""
    runs = tmp_path / "runs.jsonl"
    record = ("import json, os, sys; frame = json.load(sys.stdin); "
              f"frame['env'] = {{k: os.environ.get(k) for k in {VARIABLES}}}; "
              "open(sys.argv[1], 'a').write(json.dumps(frame) + '\\n')")
    result = edgecam("run", "--headless", "--frames", "20", "--only", "espresso", "--min-score", "0.5",
                     "--exec", shlex.join([sys.executable, "-c", record, str(runs)]), check=True)
    seen = read_jsonl(runs)
    assert seen and all(run["top"] == [] for run in seen)  # the first 20 demo frames: the cat
    assert all(run["env"]["EDGECAM_LABEL"] == run["env"]["EDGECAM_SCORE"] == "" for run in seen)
    assert all(run["env"]["EDGECAM_EVENT"] == "frame" for run in seen)
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr
