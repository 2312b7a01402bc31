"""ncnn on the CPU (Tencent's runtime for phones and boards), on the files pnnx built from the same
network and weights as the ONNX file. Imports only `ncnn`: no torch, no onnx.

The graph takes float NCHW; ncnn's own C++ turns each uint8 RGB frame into it and normalises it
(`Mat.from_pixels` + `substract_mean_normalize`, mean and std read from the sidecar), so the Python
side touches no pixel. fp16 storage, arithmetic and packing are on, as ncnn's defaults: each layer
uses what the CPU has. ARMv8.2 half precision (a Pi 5, a Jetson Orin) computes in fp16; older ARM
(a Pi 4, a Zero 2 W) and x86 with AVX compute in fp32 but keep some layers' weights in fp16, which
moves Lite0's logits by about 2e-3 on x86 (fp32 ncnn: 1e-5, the build's check)."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# ncnn's OpenMP (the wheel's libgomp) reads this once, when it is loaded: its idle worker threads
# sleep instead of spinning, as onnxruntime's do here. Spinning, 2 threads on a 2-core x86 whose
# other core was busy took Lite0 from 12 ms to 167 ms a frame (a spinning thread waits for one that
# has no core); a Pi's capture, resize and preview threads are such a busy core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import ncnn
import numpy as np

from edgecam.backends.base import Backend
from edgecam.base import atomic
from edgecam.base.errors import ModelError
from edgecam.base.quiet import native_stderr_hidden
from edgecam.models.store import ncnn_param

REBUILD = "rebuild it with `edgecam models build --backends ncnn`"


def precision() -> str:
    """What ncnn computes in on this CPU with fp16 enabled."""
    if ncnn.cpu_support_arm_asimdhp():
        return "fp16 (ARMv8.2 half-precision arithmetic)"
    if ncnn.cpu_support_arm_vfpv4() or ncnn.cpu_support_x86_avx():
        return "fp32 arithmetic, fp16 storage where a layer has it"
    return "fp32"


class NcnnBackend(Backend):
    """One extractor per image on one loaded net; `precision` says what this CPU computes in."""

    def __init__(self, path: Path, threads: int, name: str = "ncnn") -> None:
        self.name, self.path = name, path
        meta = atomic.read_json(atomic.sidecar(path)) or {}
        try:
            self.input_size = int(meta["input"])
            self.mean = [float(v) for v in meta["mean"]]
            self.norm = [1.0 / float(v) for v in meta["std"]]
            self.input_name, self.output_name = str(meta["input_name"]), str(meta["output_name"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            raise ModelError(f"model file {path} has no readable {atomic.sidecar(path).name} beside "
                             f"it: {REBUILD}") from None
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = threads
        opt.use_vulkan_compute = False
        opt.use_fp16_storage = opt.use_fp16_arithmetic = opt.use_fp16_packed = True
        self.precision = precision()
        self._load(ncnn_param(path), self.net.load_param)
        self._load(path, self.net.load_model)

    @staticmethod
    def _load(path: Path, load: Callable[[str], int]) -> None:
        said: list[str] = []
        with native_stderr_hidden(said):
            failed = not path.is_file() or load(str(path)) != 0
        if failed:
            reason = "no such file" if not path.is_file() else (said[0] if said else "unreadable")
            raise ModelError(f"model file {path} cannot be loaded by ncnn ({reason}): {REBUILD}")

    def predict(self, batch: np.ndarray) -> np.ndarray:
        size = self.input_size
        if batch.dtype != np.uint8 or batch.shape[1:] != (size, size, 3):
            raise ValueError(f"ncnn backend takes uint8 (N, {size}, {size}, 3), not {batch.dtype} "
                             f"{batch.shape}")
        batch = np.ascontiguousarray(batch)  # a no-op for the pipeline's frames
        logits: np.ndarray | None = None
        for i, image in enumerate(batch):
            # from_pixels reads the array's buffer in place: uint8 HWC → float CHW in one C++ pass
            pixels = ncnn.Mat.from_pixels(image, ncnn.Mat.PixelType.PIXEL_RGB, size, size)
            pixels.substract_mean_normalize(self.mean, self.norm)
            extractor = self.net.create_extractor()  # one per image: it caches its blobs
            status, out = extractor.input(self.input_name, pixels), None
            if status == 0:
                status, out = extractor.extract(self.output_name)
            if status != 0:
                raise ModelError(f"model file {self.path} has no blob {self.input_name} → "
                                 f"{self.output_name} that ncnn can run (status {status}): {REBUILD}")
            row = np.asarray(out).reshape(-1)  # a view of the Mat, copied once into the result
            if logits is None:
                logits = np.empty((len(batch), row.size), np.float32)
            logits[i] = row
        return logits if logits is not None else np.empty((0, 0), np.float32)
