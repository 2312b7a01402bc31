"""Builds the ncnn files of a model with pnnx: the bare network of the ONNX file (float NCHW in),
traced to TorchScript and converted at the fixed input shape [1, 3, S, S]. ncnn normalises in its own
C++ pixel conversion (`Mat.from_pixels` + `substract_mean_normalize`), so mean and std go into the
sidecar, not the graph.

The artifact is `<name>.ncnn.bin` with its companion `<name>.ncnn.param` beside it (hashed in the
sidecar). The weights are stored in fp32 (pnnx's fp16=0): ncnn casts them to fp16 at load time where
the CPU gains from it, and the check against eager torch runs fp32 ncnn, so it can be strict.
Imports torch and runs the pnnx executable: a build-time dependency, never a device one."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import warnings
from pathlib import Path

# As in edgecam.backends.ncnn (read there why): set before ncnn's OpenMP is loaded, since a build
# on first use loads ncnn here, before the backend does, in the process that then runs it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import ncnn
import numpy as np
import pnnx
import torch

from edgecam.base import atomic
from edgecam.base.errors import ModelError
from edgecam.base.progress import Progress
from edgecam.models import build as torch_build
from edgecam.models import store

# Seconds pnnx may take for one model (Lite4 on a slow builder included).
PNNX_TIMEOUT = 1800
# The blob names pnnx gives the graph's one input and one output.
INPUT_NAME, OUTPUT_NAME = "in0", "out0"


def run(spec: store.ModelSpec, param: Path, weights: Path, images: np.ndarray) -> np.ndarray:
    """Logits of the ncnn files of `spec` for uint8 NHWC RGB `images`, normalised by ncnn as the
    backend does, in fp32 (fp16 off: this is the check)."""
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_fp16_packed = False
    failed = ModelError(f"ncnn cannot run the files pnnx wrote for {spec.name}: pick another --backend")
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise failed
    norm = [1.0 / s for s in spec.std]
    logits = []
    for image in np.ascontiguousarray(images):
        pixels = ncnn.Mat.from_pixels(image, ncnn.Mat.PixelType.PIXEL_RGB, image.shape[1], image.shape[0])
        pixels.substract_mean_normalize(list(spec.mean), norm)
        extractor = net.create_extractor()
        if extractor.input(INPUT_NAME, pixels) != 0:
            raise failed
        status, out = extractor.extract(OUTPUT_NAME)
        if status != 0:
            raise failed
        logits.append(np.array(out).reshape(-1))
    return np.stack(logits)


def _last_line(text: str) -> str:
    """The last non-empty line of pnnx's output, without its terminal colours."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _convert(model: torch.nn.Module, spec: store.ModelSpec, param: Path, weights: Path) -> None:
    """Trace `model` and let pnnx write its ncnn files to `param` and `weights`; everything else
    pnnx writes (its own .pnnx.param/.bin, _pnnx.py, _ncnn.py, .onnx) stays in a temporary folder."""
    shape = [1, 3, spec.input, spec.input]
    with tempfile.TemporaryDirectory(prefix="edgecam-pnnx-") as folder:
        work = Path(folder)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but pnnx reads it
            torch.jit.trace(model, torch.zeros(shape), check_trace=False).save(str(work / "model.pt"))
        command = [pnnx.EXEC_PATH, str(work / "model.pt"),
                   "inputshape=[{}]f32".format(",".join(map(str, shape))), "fp16=0", "device=cpu",
                   f"ncnnparam={param}", f"ncnnbin={weights}",
                   f"pnnxparam={work / 'model.pnnx.param'}", f"pnnxbin={work / 'model.pnnx.bin'}",
                   f"pnnxpy={work / 'model_pnnx.py'}", f"pnnxonnx={work / 'model.pnnx.onnx'}",
                   f"ncnnpy={work / 'model_ncnn.py'}"]
        try:
            result = subprocess.run(command, cwd=work, capture_output=True, text=True, errors="replace",
                                    timeout=PNNX_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ModelError(f"pnnx cannot convert {spec.name} (no result after {PNNX_TIMEOUT} s): "
                             "pick another --backend") from None
    if result.returncode != 0 or not param.stat().st_size or not weights.stat().st_size:
        reason = _last_line(result.stderr) or _last_line(result.stdout) or f"exit status {result.returncode}"
        raise ModelError(f"pnnx cannot convert {spec.name} ({reason}): pick another --backend")


def build(spec: store.ModelSpec, path: Path, _calib: Path | None = None) -> dict:
    """Convert `spec` to ncnn at `path` (+ its .param), once it agrees with eager torch."""
    progress = Progress(f"building {spec.name} (ncnn)", 4)
    model = torch_build.network(spec)
    progress.advance(note="weights loaded")
    example = torch_build.sample_input(spec)
    with torch.inference_mode():
        # eager torch on the same uint8 frames, normalised as in every other artifact
        expected = torch_build.Preprocessed(model, spec.mean, spec.std).eval()(example).numpy()
    param = store.ncnn_param(path)
    try:
        # Converted straight into temporaries beside their targets, which they replace in reverse
        # order: the param first, the bin last (a crash in between leaves a param whose hash the
        # bin's old sidecar does not record, so the pair is rebuilt).
        with atomic.replaced(path) as tmp_weights, atomic.replaced(param) as tmp_param:
            _convert(model, spec, tmp_param, tmp_weights)
            progress.advance(note="converted by pnnx")
            diff = float(np.abs(run(spec, tmp_param, tmp_weights, example.numpy()) - expected).max())
            progress.advance(note=f"checked, max |Δlogit| {diff:.2e}")
            if not diff <= torch_build.MAX_ABS_DIFF:
                raise ModelError(f"the ncnn file of {spec.name} differs from torch by {diff:.3g} "
                                 f"(limit {torch_build.MAX_ABS_DIFF}); refusing to write it")
    except atomic.Unwritable as e:
        raise torch_build.unwritable(path, e) from None
    details = {"kind": "ncnn", "max_abs_diff": diff, "input": spec.input, "mean": list(spec.mean),
               "std": list(spec.std), "input_name": INPUT_NAME, "output_name": OUTPUT_NAME,
               "torch": torch.__version__, "pnnx": pnnx.__version__,
               "trained": store.weights_id(spec) is not None}
    store.write_meta(spec, path, companions=(param,), **details)
    progress.finish(f"{path} (max |Δlogit| vs torch {diff:.2e})")
    return details
