"""Builds the artifacts of a model: the network with its weights, wrapped so that it takes the
uint8 HWC frames the pipeline produces (mean/std, layout and dtype inside the graph), exported to
ONNX or TorchScript and checked against eager torch before it is written. Imports torch."""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecam import nets, store
from edgecam.errors import ModelError
from edgecam.progress import Progress

log = logging.getLogger(__name__)

# An export whose logits differ more than this from eager torch is refused.
MAX_ABS_DIFF = 1e-3


class Preprocessed(nn.Module):
    """uint8 NHWC RGB in, logits out: the model's own normalisation is part of the graph."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32)
        return self.net((x - self.mean) * self.scale)


def network(spec: store.ModelSpec) -> nn.Module:
    """The eager network of `spec` with its trained weights, in eval mode."""
    assert spec.net is not None
    net = nets.create(spec.net, len(spec.labels))
    weights = store.weights_file(spec)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
            raise ModelError(f"weights {weights} do not fit network {spec.net}: {first}") from None
    return net.eval()


def sample_input(spec: store.ModelSpec, batch: int = 2) -> torch.Tensor:
    generator = np.random.default_rng(0)
    return torch.from_numpy(generator.integers(0, 256, (batch, spec.input, spec.input, 3), np.uint8))


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )


def _run_onnx(path: Path, example: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": example.numpy()})[0]


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but runs everywhere
        traced = torch.jit.freeze(torch.jit.trace(model, example))
        traced.save(str(path))


def _run_torchscript(path: Path, example: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.jit.load(str(path)).eval()(example).numpy()


EXPORTERS = {
    "onnx": (_export_onnx, _run_onnx),
    "torchscript": (_export_torchscript, _run_torchscript),
}


def build(spec: store.ModelSpec, kind: str, path: Path) -> dict:
    """Export `spec` as `kind` to `path` (atomically) after checking it against eager torch."""
    export, run = EXPORTERS[kind]
    progress = Progress(f"building {spec.name} ({kind})", 4)
    model = Preprocessed(network(spec), spec.mean, spec.std).eval()
    progress.advance(note="weights loaded")
    example = sample_input(spec)
    with torch.inference_mode():
        expected = model(example).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad():
            export(model, example[:1], tmp)
        progress.advance(note="exported")
        diff = float(np.abs(run(tmp, example) - expected).max())
        progress.advance(note=f"max |Δlogit| {diff:.2e}")
        if not diff <= MAX_ABS_DIFF:
            raise ModelError(f"the {kind} export of {spec.name} differs from torch by {diff:.3g} "
                             f"(limit {MAX_ABS_DIFF}); refusing to write it")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    details = {"kind": kind, "max_abs_diff": diff, "input": spec.input, "torch": torch.__version__}
    store.write_meta(spec, path, **details)
    progress.finish(f"{path} (max |Δlogit| vs torch {diff:.2e})")
    return details
