"""onnxruntime on the CPU. Imports no torch: this is the path a 512 MB Pi Zero 2 W runs.

Tuned for small ARM CPUs: intra-op threads = the cores we may use (the caller's choice), one
inter-op thread, no spinning, all graph optimisations, and the optimised graph cached per machine
so that a restart does not redo them."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecam.backends.base import Backend
from edgecam.base import atomic
from edgecam.base.errors import ModelError

log = logging.getLogger(__name__)

# onnxruntime warns on stderr that a fully optimised graph is tied to this machine: we know, and
# key the cached file by machine for that reason.
ort.set_default_logger_severity(3)


def optimized_path(path: Path) -> Path | None:
    """Where the optimised graph of `path` is cached: keyed by the model's recorded sha256, the
    onnxruntime version and the CPU, since layout optimisations are hardware specific. None for a
    model file without a recorded hash (a user's own .onnx)."""
    try:
        digest = json.loads(atomic.sidecar(path).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from edgecam.base.machine import cpu_model

    key = hashlib.sha256(f"{digest}|{ort.__version__}|{cpu_model()}".encode()).hexdigest()[:16]
    return path.parent / "optimized" / f"{path.stem}.{key}.onnx"


def optimize(path: str, cached: str, threads: int) -> None:
    """Write the optimised graph of `path` to `cached` (in a process of its own: see below)."""
    options = OnnxBackend._options(threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    Path(cached).parent.mkdir(parents=True, exist_ok=True)
    options.optimized_model_filepath = cached
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _optimized_apart(path: Path, cached: Path, threads: int) -> bool:
    """Optimise the graph once, in a child process: what onnxruntime allocates while optimising
    (25 MB of a Lite0 run's 161 MB peak) goes back with it, so the first start of a small board
    peaks no higher than the next. False when that failed (a read-only cache): optimise here."""
    from edgecam.base import child

    try:
        child.call(optimize, str(path), str(cached), threads)
    except Exception:  # noqa: BLE001 - any failure: the in-process path reports what matters
        cached.unlink(missing_ok=True)
        return False
    return cached.is_file()


class OnnxBackend(Backend):
    """onnxruntime's CPU provider on a uint8 NHWC graph: both the fp32 and the int8 file, so
    `name` says which of the two choices ("onnx", "onnx-int8") it serves."""

    def __init__(self, path: Path, threads: int, name: str = "onnx") -> None:
        self.name = name
        self.session = self._session(path, threads)
        first = self.session.get_inputs()[0]
        shape = first.shape
        if first.type != "tensor(uint8)" or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise ModelError(f"model file {path} takes {first.type} {shape}; edgecam needs uint8 "
                             "[N, S, S, 3] RGB input with the normalisation inside the graph")
        self.input_name = first.name
        self.input_size = int(shape[1])

    @staticmethod
    def _options(threads: int, level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = level
        # Idle worker threads sleep instead of spinning: spinning takes the gaps in which capture,
        # resize, log and preview run. `edgecam bench --pipeline` (Lite0, 2 threads, 2-core x86,
        # in-memory 720p frames), two runs each: spinning raised inference alone to 124-155 FPS
        # but the pipeline kept only 0.87 of it (0.91-0.99 without); a real camera's capture and
        # decoding need those gaps, and a Pi pays for spinning in heat.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def _session(self, path: Path, threads: int, apart: bool = True) -> ort.InferenceSession:
        cached = optimized_path(path)
        if cached is not None and cached.is_file():
            try:
                return ort.InferenceSession(
                    str(cached), self._options(threads, ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                    providers=["CPUExecutionProvider"])
            except Exception:  # noqa: BLE001 - a torn or stale cache file: drop it and optimise again
                log.warning("cached optimised graph %s is unusable: optimising %s again", cached, path)
                cached.unlink(missing_ok=True)
        if cached is not None and apart and _optimized_apart(path, cached, threads):
            return self._session(path, threads, apart=False)
        options = self._options(threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                options.optimized_model_filepath = str(cached)
            except OSError:  # a read-only cache: optimise in memory every time
                pass
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime has its own exception types
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelError(f"model file {path} cannot be loaded by onnxruntime ({reason}): "
                             "rebuild it with `edgecam models build`") from None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
