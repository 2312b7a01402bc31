"""Fault suite, signals at random moments: 100 `edgecam run`s (headless, a folder of photos, a log)
each get SIGTERM, SIGINT, or SIGHUP and later SIGTERM, after a seeded random delay that spans the
interpreter start-up, the model load, the loop, the shutdown and the time after the exit. Every run
must exit 0 with no traceback, leave a log whose every line parses, and no temporary file in the
model cache.

Other endings are accepted only where no edgecam code runs, so nothing of edgecam's can be at
fault: before edgecam's main() installed its handlers (the interpreter starting: the signal's
default action, -N, or for SIGINT Python's own KeyboardInterrupt report), and after edgecam
finished (the interpreter exiting, its handlers reset: -N). systemd counts SIGTERM/SIGINT/SIGHUP
deaths as clean, and sends no reload before READY."""
from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_faults import leftovers
from test_logs import start_run

pytestmark = pytest.mark.faults

RUNS = 100
SEED = 9
FRAMES = 30  # the SIGTERM/SIGINT runs end by themselves after these, so signals also hit the exit
EXIT_TIMEOUT = 60.0  # seconds a run may take to exit after its last signal (generous: shared CPUs)


@dataclass(frozen=True)
class Plan:
    """What one run gets: (signal, delay after the previous step) pairs."""

    index: int
    steps: tuple[tuple[signal.Signals, float], ...]


@dataclass
class Outcome:
    plan: Plan
    returncode: int | None  # None: still running EXIT_TIMEOUT s after its last signal (killed)
    stderr: str
    log: Path

    @property
    def phase(self) -> str:
        """Where the first signal landed, as the log tells: before the log was opened, during
        the loop, or once every frame was classified (shutdown, or after the exit)."""
        if not self.log.exists():
            return "before the log"
        lines = self.log.read_bytes().count(b"\n")
        return "after the last frame" if lines >= FRAMES else "during the run"


def plans(seconds: float) -> list[Plan]:
    """RUNS plans from a seeded RNG; delays spread over `seconds`, an undisturbed run's length."""
    rng = random.Random(SEED)
    result = []
    for index in range(RUNS):
        first = rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
        steps = [(first, rng.uniform(0.0, 1.6 * seconds))]
        if first == signal.SIGHUP:  # the reload, then the stop, possibly mid-restart
            steps.append((signal.SIGTERM, rng.uniform(0.0, 0.5 * seconds)))
        result.append(Plan(index, tuple(steps)))
    return result


def run_args(folder: Path, log: Path, plan: Plan | None) -> list[str]:
    """A SIGHUP run has no frame limit: a SIGTERM lost after the reload would make it hang."""
    reloads = plan is not None and plan.steps[0][0] == signal.SIGHUP
    limit = [] if reloads else ["--frames", str(FRAMES)]
    return ["--source", str(folder), "--loop", *limit, "--threads", "1", "--log", str(log)]


def execute(plan: Plan, folder: Path, work: Path) -> Outcome:
    log, stderr = work / f"run{plan.index}.jsonl", work / f"run{plan.index}.stderr"
    process = start_run(*run_args(folder, log, plan), stderr=stderr)
    try:
        for signum, delay in plan.steps:
            time.sleep(delay)
            if process.poll() is None:
                process.send_signal(signum)
        returncode: int | None = process.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Outcome(plan, returncode, stderr.read_text(), log)


def problems(outcome: Outcome, cache: Path) -> list[str]:
    found: list[str] = []
    signals = {s for s, _ in outcome.plan.steps}
    if outcome.returncode is None:
        return [f"still running {EXIT_TIMEOUT:g} s after its last signal"]
    lines = outcome.stderr.splitlines()
    before_main = not outcome.log.exists() and not re.search(r'cli\.py", line \d+, in main\b',
                                                             outcome.stderr)
    after_exit = -outcome.returncode in signals and bool(lines) and " classified " in lines[-1]
    if outcome.returncode != 0 and not (before_main or after_exit):
        found.append(f"exit status {outcome.returncode}")
    if "Traceback" in outcome.stderr and not before_main:
        found.append("a traceback")
    if outcome.log.exists():
        data = outcome.log.read_bytes()
        lines = data.split(b"\n")
        if lines[-1]:
            found.append("a log ending mid-line")
        for line in lines[:-1]:
            try:
                json.loads(line)
            except ValueError:
                found.append(f"a log line that does not parse: {line[:80]!r}")
    if leftovers(cache):
        found.append(f"temporary files in the model cache: {leftovers(cache)}")
    return found


def test_signals_at_random_moments_end_every_run_cleanly(
        cache: Path, photo_files: dict[str, Path], tmp_path: Path) -> None:
    """`cache` holds the built model alone, so that anything a run leaves in it shows."""
    folder = photo_files["chelsea"].parent
    started = time.monotonic()
    calibration = start_run(*run_args(folder, tmp_path / "calibration.jsonl", None),
                            stderr=tmp_path / "calibration.stderr")
    assert calibration.wait(EXIT_TIMEOUT) == 0, (tmp_path / "calibration.stderr").read_text()
    seconds = time.monotonic() - started
    with ThreadPoolExecutor(2) as pool:  # two at a time: the wall time, on two shared cores
        outcomes = list(pool.map(lambda p: execute(p, folder, tmp_path), plans(seconds)))
    failures = [(o, found) for o in outcomes if (found := problems(o, cache))]
    phases = Counter(o.phase for o in outcomes)
    statuses = Counter(o.returncode for o in outcomes)
    print(f"\n{RUNS} signal runs: {RUNS - len(failures)} clean; first signal landed {dict(phases)}; "
          f"exit statuses {dict(statuses)}; an undisturbed run takes {seconds:.1f} s; "
          f"{time.monotonic() - started:.0f} s in all")
    assert not failures, "\n".join(f"{o.plan}: {found}\n{o.stderr}" for o, found in failures)
    # The delays did reach every phase, or the test proved less than it claims.
    assert all(phases[p] for p in ("before the log", "during the run", "after the last frame")), phases
