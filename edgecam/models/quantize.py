"""Static int8 quantization of a built ONNX model: QDQ format, per-channel int8 weights, uint8
activations whose ranges come from calibration frames (the demo clip's real photos by default, or
a folder of the user's own pictures). The result is checked against the fp32 model on those frames
(top-1 agreement) and refused if it disagrees too often.

Weights use 7 of their 8 bits (reduce_range): x86 CPUs without VNNI multiply uint8 by int8 in
pairs summed into int16, which saturates on full-range inputs (it cost EfficientNet-Lite0 17
points of top-1 agreement); ARM loses nothing measurable. When the model normalises every channel
alike with an integer mean (EfficientNet-Lite: (x - 127) / 128), the uint8 frame already is the
quantized input, so the graph takes it as it is and the normalisation costs nothing."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgecam.base import atomic, child
from edgecam.base.errors import ModelError
from edgecam.base.imageio import is_image_file, read_rgb
from edgecam.base.preprocess import center_crop_resize
from edgecam.base.progress import Progress
from edgecam.models import store

CALIBRATION_FRAMES = 100
# Frames run at once, in calibration and in the agreement check: onnxruntime holds every
# intermediate output of the frames it has seen until it reduces them to ranges (min and max),
# which for 100 frames of EfficientNet-Lite0 peaked at 1.6 GB; 10 at a time give the same ranges.
# (Its CalibMaxIntermediateOutputs would drop the outputs unreduced: CalibStridedMinMax it is.)
FRAMES_AT_ONCE = 10
# An int8 model whose top-1 differs from fp32 on more than this share of the calibration frames is
# refused (onnx-int8 and litert-int8 alike).
MIN_AGREEMENT = 0.97


def demo_frames(size: int, count: int = CALIBRATION_FRAMES) -> np.ndarray:
    """`count` frames spread evenly over the demo clip, cropped and resized to `size`."""
    from edgecam.base.samples import DemoClip

    clip = DemoClip()
    picks = np.linspace(0, len(clip) - 1, count).round().astype(int)
    return np.stack([center_crop_resize(clip.frame(int(i)), size) for i in picks])


def folder_frames(folder: Path, size: int, count: int = CALIBRATION_FRAMES) -> np.ndarray:
    """Up to `count` images of `folder` (sorted by name), cropped and resized to `size`."""
    if not folder.is_dir():
        raise ModelError(f"calibration folder {folder} does not exist: check the --calib path")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))[:count]
    if not files:
        raise ModelError(f"calibration folder {folder} has no images (JPEG, PNG, ...): put some "
                         "pictures from the camera there")
    return np.stack([center_crop_resize(read_rgb(p), size) for p in files])


def calibration_frames(spec: store.ModelSpec, calib: Path | None) -> np.ndarray:
    """The frames an int8 build calibrates on and is checked on: `calib`'s images, or the demo clip's."""
    return folder_frames(calib, spec.input) if calib else demo_frames(spec.input)


def agreement_of(fp32_logits: np.ndarray, int8_logits: np.ndarray) -> float:
    """The share of frames on which the int8 build keeps fp32's top-1."""
    return float((fp32_logits.argmax(-1) == int8_logits.argmax(-1)).mean())


def checked_agreement(spec: store.ModelSpec, share: float) -> float:
    """`share`, refused below MIN_AGREEMENT for trained weights (an untrained net's near-uniform
    logits have no stable top-1)."""
    if store.weights_id(spec) is not None and share < MIN_AGREEMENT:
        raise ModelError(f"int8 {spec.name} keeps the fp32 top-1 on only {share:.0%} of the "
                         f"calibration frames (limit {MIN_AGREEMENT:.0%}); refusing to write it: "
                         "calibrate with more typical pictures (--calib DIR)")
    return share


def int8_details(spec: store.ModelSpec, kind: str, calib: Path | None, frames: int, agreement: float) -> dict:
    """What the sidecar of an int8 build records: `models list`, `auto` and the tests read it."""
    return {"kind": kind, "input": spec.input, "top1_agreement": agreement,
            "calibration": str(calib) if calib else "demo", "frames": frames,
            "trained": store.weights_id(spec) is not None}


class _Reader:
    """onnxruntime's CalibrationDataReader protocol, strided (CalibStridedMinMax): one frame per
    call of the range onnxruntime sets, then None. Its length is rounded up to whole strides, and
    the last range is cut at the real end, which it always reaches past."""

    def __init__(self, name: str, frames: np.ndarray) -> None:
        self.name, self.frames = name, frames
        self._items: Iterator[np.ndarray] = iter(())

    def __len__(self) -> int:
        return -(-len(self.frames) // FRAMES_AT_ONCE) * FRAMES_AT_ONCE

    def set_range(self, start_index: int, end_index: int) -> None:
        self._items = iter(self.frames[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._items, None)
        return None if frame is None else {self.name: frame[None]}


def run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    """Logits of the ONNX file `path` for uint8 NHWC `images`, FRAMES_AT_ONCE at a time."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": images[i:i + FRAMES_AT_ONCE]})[0]
                           for i in range(0, len(images), FRAMES_AT_ONCE)])


def uint8_quantization(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[float, int] | None:
    """(scale, zero point) under which the raw uint8 frame is exactly the normalised input, when
    every channel shares one integer mean and one std; None otherwise (ImageNet's per-channel
    normalisation), and the graph then normalises in float and quantizes the result."""
    if len(set(mean)) != 1 or len(set(std)) != 1 or not float(mean[0]).is_integer():
        return None
    if not 0 <= mean[0] <= 255:
        return None
    return 1.0 / std[0], int(mean[0])


def quantize(fp32: Path, out: Path, frames: np.ndarray, mean: tuple[float, ...],
             std: tuple[float, ...]) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        # The normalisation (layout, dtype, mean/std: everything before the first conv) stays
        # float; its output is quantized once.
        head = []
        for node in onnx.load(str(prepared)).graph.node:
            if node.op_type == "Conv":
                break
            head.append(node)
        normalized = head[-1].output[0]
        cast = next((i for i, n in enumerate(head) if n.op_type == "Cast"), None)
        exact = uint8_quantization(mean, std) if cast is not None else None
        overrides = {}
        if exact is not None:
            overrides[normalized] = [{"scale": np.array(exact[0], np.float32),
                                      "zero_point": np.array(exact[1], np.uint8)}]
        quantize_static(
            str(prepared), str(out), _Reader("image", frames), quant_format=QuantFormat.QDQ,
            per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=[n.name for n in head],
            extra_options={"TensorQuantOverrides": overrides, "CalibStridedMinMax": FRAMES_AT_ONCE},
        )
    if exact is not None:
        _take_uint8_as_quantized(out, head[cast:])


def _take_uint8_as_quantized(path: Path, normalisation: list) -> None:
    """Drop the float normalisation (Cast to the end of the head) and its QuantizeLinear: with
    the exact scale and zero point they give back the uint8 frame they were fed, so it goes to the
    first DequantizeLinear as it is (same logits to the last bit on the demo frames)."""
    import onnx

    model = onnx.load(str(path))
    uint8_frame, normalized = normalisation[0].input[0], normalisation[-1].output[0]
    quant = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == normalized)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name == quant.output[0]:
                node.input[i] = uint8_frame
    dead = {n.name for n in normalisation} | {quant.name}
    kept = [n for n in model.graph.node if n.name not in dead]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {name for node in model.graph.node for name in node.input}
    initializers = [i for i in model.graph.initializer if i.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _build_fp32(spec: store.ModelSpec) -> dict:
    from edgecam.models import build

    return build.onnx(spec, store.artifact_path(spec, "onnx"))


def build_int8(spec: store.ModelSpec, path: Path, calib: Path | None = None) -> dict:
    """Quantize the fp32 ONNX artifact of `spec` into `path`, checking top-1 agreement with fp32."""
    frames = calibration_frames(spec, calib)
    fp32 = store.artifact_path(spec, "onnx")
    if not store.verified(spec, fp32):
        child.call(_build_fp32, spec)  # torch: in a process of its own, which gives its memory back
    progress = Progress(f"quantizing {spec.name} (int8)", 3)
    progress.advance(note=f"{len(frames)} calibration frames")
    try:
        with atomic.replaced(path) as tmp:
            quantize(fp32, tmp, frames, spec.mean, spec.std)
            progress.advance(note="quantized")
            agreement = checked_agreement(
                spec, agreement_of(run_onnx(fp32, frames), run_onnx(tmp, frames)))
            progress.advance(note=f"top-1 agreement {agreement:.1%}")
    except atomic.Unwritable as e:
        from edgecam.models.build import unwritable

        raise unwritable(path, e) from None
    details = int8_details(spec, "onnx-int8", calib, len(frames), agreement)
    store.write_meta(spec, path, **details)
    progress.finish(f"{path} (top-1 agreement with fp32 {agreement:.1%} on {len(frames)} frames)")
    return details
