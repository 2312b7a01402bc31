"""`--backend auto`, the default: on first use per machine and model, measure every backend whose
runtime is installed (each in a fresh process, building its file first where needed), keep the
fastest one whose top-1 agrees with fp32 onnxruntime on the demo frames, and remember the choice in
the model cache (`auto.json`) so later starts pay nothing. An int8 file exists only if its build
kept fp32's top-1 on 97% of the demo frames (edgecam.models.quantize)."""
from __future__ import annotations

import importlib.util
import logging
import statistics
from datetime import UTC, datetime

from edgecam.backends import BACKENDS, timing
from edgecam.base import atomic
from edgecam.base.errors import ModelError
from edgecam.base.progress import Progress
from edgecam.models import store

log = logging.getLogger(__name__)

MEMORY_FILE = "auto.json"  # in the model cache: machine key → the choice made there
RUNS = 30
RUNOFF_ROUNDS = 2  # further measurements of the two fastest, alternating
# A candidate must give fp32's top-1 on at least this share of the demo frames.
MIN_AGREEMENT = 0.875


def candidates() -> list[str]:
    """Backends worth measuring here: those whose runtime is installed."""
    return [name for name, entry in BACKENDS.items() if importlib.util.find_spec(entry.runtime) is not None]


def machine_suffix() -> str:
    """This CPU, and the artifacts' format: a choice measured on older builds is measured again."""
    from edgecam.base.machine import cpu_model

    return f"{cpu_model()}|format {store.FORMAT}"


def machine_key(spec: store.ModelSpec, threads: int) -> str:
    return f"{spec.name}|{threads} threads|{machine_suffix()}"


def remembered() -> dict[str, dict]:
    return atomic.read_json(store.cache_dir() / MEMORY_FILE) or {}


def remember(key: str, choice: dict) -> None:
    atomic.write_json(store.cache_dir() / MEMORY_FILE, {**remembered(), key: choice})


def _runoff(spec: store.ModelSpec, threads: int, allow_untrained: bool, passing: dict[str, dict],
            progress: Progress) -> str:
    """The fastest in `passing` once the two fastest are measured again in alternating rounds: a shared
    or throttling machine's slow seconds then fall on both (one pass of 30 runs each once took
    EfficientNet-Lite0's litert-int8 for 2.7 ms, and 1.5 ms a minute later). Their medians in
    `passing` become the median of their rounds."""
    finalists = sorted(passing, key=lambda n: passing[n]["median_ms"])[:2]
    rounds = {name: [passing[name]["median_ms"]] for name in finalists}
    for _ in range(RUNOFF_ROUNDS if len(finalists) > 1 else 0):
        for name in finalists:
            found = timing.run_one(spec.name, name, threads, RUNS, allow_untrained)
            if "median_ms" in found:
                rounds[name].append(found["median_ms"])
            progress.advance(note=f"runoff: {name} {found.get('median_ms', float('nan')):.2f} ms")
    for name, times in rounds.items():
        passing[name]["median_ms"] = round(statistics.median(times), 3)
    return min(passing, key=lambda n: passing[n]["median_ms"])


def choose(spec: store.ModelSpec, threads: int, allow_untrained: bool = False) -> str:
    """The remembered choice for this model and machine, measuring once if there is none."""
    if spec.path is not None:  # a ready model file: there is only its own format
        return "onnx"
    key = machine_key(spec, threads)
    known = remembered().get(key)
    if known is not None:
        return known["backend"]
    names = candidates()
    log.info("--backend auto: measuring %s on this machine once (%s; a backend's first use builds "
             "its file)", spec.name, ", ".join(names))
    progress = Progress(f"--backend auto: measuring {spec.name}", len(names) + 2 * RUNOFF_ROUNDS)
    results = {}
    for name in names:
        results[name] = timing.run_one(spec.name, name, threads, RUNS, allow_untrained)
        found = results[name]
        progress.advance(note=f"{name} {found['median_ms']:.2f} ms" if "median_ms" in found
                         else f"{name} cannot run here")
    reference = results["onnx"].get("top1")
    if reference is None:
        raise ModelError(f"--backend auto: onnxruntime cannot run {spec.name} here "
                         f"({results['onnx'].get('error')}); pick --backend explicitly")
    measured = {}
    for name, result in results.items():
        if "median_ms" not in result:
            log.info("--backend auto: %s cannot run here: %s", name, result.get("error"))
            continue
        agreement = sum(a == b for a, b in zip(result["top1"], reference, strict=True)) / len(reference)
        measured[name] = {"median_ms": round(result["median_ms"], 3), "agreement": agreement}
    # Untrained weights (benchmarks) give near-uniform logits whose top-1 means nothing: speed only.
    trained = store.weights_id(spec) is not None
    passing = {n: m for n, m in measured.items() if m["agreement"] >= MIN_AGREEMENT or not trained}
    best = _runoff(spec, threads, allow_untrained, passing, progress)
    progress.finish(f"{best} kept")
    remember(key, {"backend": best, "measured": measured,
                   "when": datetime.now(UTC).isoformat(timespec="seconds")})
    log.info("--backend auto: %s is fastest for %s here (%s)", best, spec.name,
             ", ".join(f"{n} {m['median_ms']:.1f} ms" for n, m in measured.items()))
    return best
