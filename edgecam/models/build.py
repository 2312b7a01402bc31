"""Builds the artifacts of a model: the network with its weights, wrapped so that it takes the
uint8 HWC frames the pipeline produces (mean/std, layout and dtype inside the graph), exported to
ONNX or TorchScript and checked against eager torch before it is written; int8 is in quantize.py,
and edgecam.models.artifacts picks the builder of each kind.
Imports torch."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecam.base import atomic
from edgecam.base.errors import ModelError
from edgecam.base.progress import Progress
from edgecam.models import nets, store
from edgecam.models.quantize import run_onnx

# An export whose logits differ more than this from eager torch is refused.
MAX_ABS_DIFF = 1e-3
# Untrained networks start from this seed, so every artifact of one is the same network.
SEED = 0


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


def untrained(spec: store.ModelSpec) -> nn.Module:
    """The network of `spec` with its (seeded, so reproducible) initial weights."""
    assert spec.net is not None
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        return nets.create(spec.net, len(spec.labels), **spec.conventions)


def load_weights(net: nn.Module, path: Path, spec: store.ModelSpec) -> nn.Module:
    """Load the checkpoint `path` into `net`, every key matched (weights_only: untrusted input)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling raises many types for a file that is not a checkpoint
        raise ModelError(f"weights file {path} is not a readable torch checkpoint "
                         f"({type(e).__name__}): check the file") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if isinstance(state, dict) and spec.net is not None:
        state = nets.published_state(spec.net, state)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise ModelError(f"weights {path} do not fit network {spec.net}: "
                         f"{lines[1] if len(lines) > 1 else lines[0]}") from None
    return net


def network(spec: store.ModelSpec) -> nn.Module:
    """The eager network of `spec` with its trained weights (if any here), in eval mode."""
    net = untrained(spec)
    weights = store.weights_file(spec)
    if weights is not None:
        load_weights(net, weights, spec)
    return net.eval()


def wrapped(spec: store.ModelSpec) -> nn.Module:
    return Preprocessed(network(spec), spec.mean, spec.std).eval()


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


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but runs everywhere
        # check_trace would re-trace and compare (3x the time); build() checks the result itself
        traced = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
        traced.save(str(path))


def _run_torchscript(path: Path, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.jit.load(str(path)).eval()(torch.from_numpy(images)).numpy()


# (write the file of `model` for `example` at a path, logits of that file for a batch of images)
Exporter = tuple[Callable[[nn.Module, torch.Tensor, Path], None], Callable[[Path, np.ndarray], np.ndarray]]

EXPORTERS: dict[str, Exporter] = {
    "onnx": (_export_onnx, run_onnx),
    "torchscript": (_export_torchscript, _run_torchscript),
}


def unwritable(path: Path, e: atomic.Unwritable) -> ModelError:
    """The error for a model cache that `path` cannot be written into."""
    return ModelError(f"cannot write {path.name} into the model cache {path.parent} "
                      f"({e.strerror}): make it writable, or set EDGECAM_CACHE to a writable "
                      "folder")


def export_checked(model: nn.Module, spec: store.ModelSpec, kind: str, path: Path,
                   progress: Progress | None = None, exporter: Exporter | None = None) -> float:
    """Export `model` as `kind` to `path` (atomically), only once the export's logits agree with
    eager torch within MAX_ABS_DIFF on sample input; the difference found. `exporter` is the
    kind's own where EXPORTERS has none (LiteRT's, in edgecam.models.to_litert)."""
    export, run = exporter or EXPORTERS[kind]
    example = sample_input(spec)
    with torch.inference_mode():
        expected = model(example).numpy()
    try:
        with atomic.replaced(path) as tmp:
            with torch.no_grad():
                export(model, example[:1], tmp)
            diff = float(np.abs(run(tmp, example.numpy()) - expected).max())
            if progress is not None:
                progress.advance(2, note=f"exported, max |Δlogit| {diff:.2e}")
            if not diff <= MAX_ABS_DIFF:
                raise ModelError(f"the {kind} export of {spec.name} differs from torch by "
                                 f"{diff:.3g} (limit {MAX_ABS_DIFF}); refusing to write it")
    except atomic.Unwritable as e:
        raise unwritable(path, e) from None
    return diff


def export(spec: store.ModelSpec, kind: str, path: Path, exporter: Exporter | None = None,
           **recorded: object) -> dict:
    """Export `spec` as `kind` to `path` (atomically) after checking it against eager torch;
    `recorded` adds to what its sidecar records (the converter's version)."""
    progress = Progress(f"building {spec.name} ({kind})", 4)
    model = wrapped(spec)
    progress.advance(note="weights loaded")
    diff = export_checked(model, spec, kind, path, progress, exporter)
    details = {"kind": kind, "max_abs_diff": diff, "input": spec.input, "torch": torch.__version__,
               "trained": store.weights_id(spec) is not None, **recorded}
    store.write_meta(spec, path, **details)
    progress.finish(f"{path} (max |Δlogit| vs torch {diff:.2e})")
    return details


def onnx(spec: store.ModelSpec, path: Path, _calib: Path | None = None) -> dict:
    return export(spec, "onnx", path)


def torchscript(spec: store.ModelSpec, path: Path, _calib: Path | None = None) -> dict:
    return export(spec, "torchscript", path)
