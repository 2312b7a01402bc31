"""Builds the LiteRT files of a model with litert-torch: the same wrapped network as the ONNX file
(uint8 NHWC in, normalisation in the graph), checked against eager torch before it is written.

int8 is ai-edge-quantizer's static recipe on the fp32 file: int8 weights per output channel,
asymmetric int8 activations whose ranges are the minimum and maximum over all calibration frames,
and the leading convolutions (which see the raw picture; a few % of the MACs) in float: the first,
then one more at a time until fp32's top-1 holds on MIN_AGREEMENT of the frames. The tool's default
(a moving average of per-frame ranges, everything quantized) kept EfficientNet-Lite0's fp32 top-1 on
91% of the demo frames; global ranges raised it to 96%, a float stem and first depthwise layer to
97%, at 1.26 ms against fp32's 3.5 ms (2 threads, 2-core x86, one run).
The fp32 build imports torch and litert-torch (with jax), the int8 one ai-edge-quantizer and LiteRT
(not torch: its process can do without the 224 MB torch takes): build-time dependencies, never
device ones."""
from __future__ import annotations

import functools
import re
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecam.base import atomic, child
from edgecam.base.errors import ModelError
from edgecam.base.progress import Progress
from edgecam.base.quiet import native_stderr_hidden
from edgecam.models import quantize, store

if TYPE_CHECKING:
    import torch


def run(path: Path, images: np.ndarray, threads: int = 2) -> np.ndarray:
    """Logits of the LiteRT file `path` (with XNNPACK, as on the device) for uint8 NHWC `images`."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_hidden():
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    source, output = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]
    logits = []
    for image in images:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        logits.append(interpreter.get_tensor(output["index"])[0])
    scale, zero = output["quantization"]  # an int8 file's logits are quantized
    return (np.stack(logits).astype(np.float32) - zero) * scale if scale else np.stack(logits)


def _failed(spec: store.ModelSpec, kind: str, e: Exception) -> ModelError:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return ModelError(f"litert-torch cannot build the {kind} file of {spec.name} "
                      f"({lines[-1] if lines else type(e).__name__}): pick another --backend")


def _export(spec: store.ModelSpec, model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        with native_stderr_hidden():
            import litert_torch

            litert_torch.config.show_progress = False
            litert_torch.convert(model, (example,)).export(str(path))
    except Exception as e:  # noqa: BLE001 - the converter raises whatever MLIR or torch.export raise
        raise _failed(spec, "litert", e) from None


def build_fp32(spec: store.ModelSpec, path: Path, _calib: Path | None = None) -> dict:
    """The fp32 file, exported and checked as the ONNX file is (edgecam.models.build.export)."""
    from edgecam.models import build  # torch: the int8 step, which only reads this file, goes without

    return build.export(spec, "litert", path, (functools.partial(_export, spec), run),
                        litert_torch=metadata.version("litert-torch"))


CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# int8 builds keep up to this many leading convolutions in float before they give up.
MAX_FLOAT_LAYERS = 4


class _Int8:
    """ai-edge-quantizer's static int8 recipe on the fp32 file, its activation ranges measured once
    on the calibration frames and reused for each count of float layers tried."""

    def __init__(self, fp32: Path, frames: np.ndarray) -> None:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import calibrator
        from ai_edge_quantizer.utils import qsv_utils

        self.fp32 = fp32
        interpreter = Interpreter(model_path=str(fp32))
        names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
        self.convolutions = [names[op["outputs"][0]] for op in interpreter._get_ops_details()
                             if op["op_name"] in CONVOLUTIONS]
        signature, inputs = next(iter(interpreter.get_signature_list().items()))
        ranges = calibrator.Calibrator(str(fp32), qsv_update_func=qsv_utils.min_max_update)
        ranges.calibrate({signature: [{inputs["inputs"][0]: f[None]} for f in frames]}, self._recipe(0))
        self.ranges = ranges.get_model_qsvs()

    def _recipe(self, float_layers: int):  # -> ai_edge_quantizer.recipe_manager.RecipeManager
        from ai_edge_quantizer import qtyping, recipe_manager
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        recipe = recipe_manager.RecipeManager()
        recipe.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                 activation_num_bits=8, weight_num_bits=8)
        for name in self.convolutions[:float_layers]:  # the first convolutions stay float
            recipe.add_quantization_config(regex=re.escape(name),
                                           operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                           algorithm_key=AlgorithmName.NO_QUANTIZE)
        return recipe

    def write(self, out: Path, float_layers: int) -> None:
        from ai_edge_quantizer import quantizer

        tool = quantizer.Quantizer(str(self.fp32))
        tool.load_quantization_recipe(self._recipe(float_layers).get_quantization_recipe())
        tool.quantize(self.ranges, enable_progress_bar=False,
                      enable_progress_report=False).export_model(str(out), overwrite=True)


def build_int8(spec: store.ModelSpec, path: Path, calib: Path | None = None) -> dict:
    """Quantize the fp32 LiteRT file of `spec` into `path`, checking top-1 agreement with fp32."""
    frames = quantize.calibration_frames(spec, calib)
    fp32 = store.artifact_path(spec, "litert")
    if not store.verified(spec, fp32):
        child.call(build_fp32, spec, fp32)  # torch and jax in a process that gives their memory back
    progress = Progress(f"quantizing {spec.name} (litert-int8)", MAX_FLOAT_LAYERS + 1)
    progress.advance(note=f"{len(frames)} calibration frames")
    expected = run(fp32, frames)
    trained = store.weights_id(spec) is not None
    try:
        with atomic.replaced(path) as tmp:
            try:
                with native_stderr_hidden():
                    int8 = _Int8(fp32, frames)
                for float_layers in range(1, MAX_FLOAT_LAYERS + 1):
                    with native_stderr_hidden():
                        int8.write(tmp, float_layers)
                    agreement = quantize.agreement_of(expected, run(tmp, frames))
                    progress.advance(note=f"{float_layers} float layers: top-1 agreement {agreement:.1%}")
                    if not trained or agreement >= quantize.MIN_AGREEMENT:
                        break
            except Exception as e:  # noqa: BLE001 - the quantizer raises many types
                raise _failed(spec, "litert-int8", e) from None
            quantize.checked_agreement(spec, agreement)
    except atomic.Unwritable as e:
        from edgecam.models.build import unwritable

        raise unwritable(path, e) from None
    details = {**quantize.int8_details(spec, "litert-int8", calib, len(frames), agreement),
               "float_layers": float_layers}
    store.write_meta(spec, path, **details)
    progress.finish(f"{path} (top-1 agreement with fp32 {agreement:.1%} on {len(frames)} frames)")
    return details
