"""`--backend auto`, the default: on first use per machine and model, measure every backend whose
runtime is installed (each in a fresh process, building its file first where needed), keep the
fastest one whose top-1 agrees with fp32 onnxruntime on the demo frames, and remember the choice in
the model cache (`auto.json`) so later starts pay nothing. An int8 file exists only if its build
kept fp32's top-1 on 97% of the demo frames (edgecam.models.quantize)."""
from __future__ import annotations

import importlib.util
import logging
from datetime import UTC, datetime

from edgecam.backends import timing
from edgecam.base import atomic
from edgecam.base.errors import ModelError
from edgecam.base.progress import Progress
from edgecam.models import store

log = logging.getLogger(__name__)

MEMORY_FILE = "auto.json"  # in the model cache: machine key → the choice made there
RUNS = 30
# A candidate must give fp32's top-1 on at least this share of the demo frames.
MIN_AGREEMENT = 0.875


# Backend → the module its runtime needs; one that is not installed is not measured.
RUNTIMES = {"onnx": "onnxruntime", "onnx-int8": "onnxruntime", "litert": "ai_edge_litert",
            "litert-int8": "ai_edge_litert", "ncnn": "ncnn", "torchscript": "torch"}


def candidates() -> list[str]:
    """Backends worth measuring here: those whose runtime is installed."""
    return [name for name, module in RUNTIMES.items() if importlib.util.find_spec(module) is not None]


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
    progress = Progress(f"--backend auto: measuring {spec.name}", len(names))
    results = {}
    for name in names:
        results[name] = timing.run_one(spec.name, name, threads, RUNS, allow_untrained)
        found = results[name]
        progress.advance(note=f"{name} {found['median_ms']:.2f} ms" if "median_ms" in found
                         else f"{name} cannot run here")
    progress.finish("measured")
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
    passing = {n: m for n, m in measured.items() if m["agreement"] >= MIN_AGREEMENT}
    best = min(passing, key=lambda n: passing[n]["median_ms"])
    remember(key, {"backend": best, "measured": measured,
                   "when": datetime.now(UTC).isoformat(timespec="seconds")})
    log.info("--backend auto: %s is fastest for %s here (%s)", best, spec.name,
             ", ".join(f"{n} {m['median_ms']:.1f} ms" for n, m in measured.items()))
    return best
