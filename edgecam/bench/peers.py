"""`edgecam bench --peers`: `edgecam run` with its defaults against the loops of the recipes users
compare it with, on the same 1280×720 MP4 clip, model weights and machine, in one run.

- tflite-example: the TensorFlow Lite Raspberry Pi example's shape: read a frame, flip it, BGR→RGB,
  resize to the input, LiteRT invoke (XNNPACK, the same threads), draw the top label and the FPS;
  one thread of control. Run with each LiteRT build of the model (fp32 and int8), the faster counts.
- pytorch-tutorial: the PyTorch Raspberry Pi tutorial's shape: the same reading, the normalisation
  in torch, the eager network under no_grad.
- edgecam: `edgecam run --source CLIP --loop --headless` with no --backend (auto).

Each loop runs in a fresh process for `frames` frames after `SETTLE` untimed ones; rounds alternate
the loops so that a shared host's slow seconds fall on all of them; medians are the figures.
`python -m edgecam.bench.peers LOOP CLIP MODEL THREADS FRAMES [MODEL_FILE]` prints one JSON line."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edgecam.backends import auto
from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.base.progress import Progress
from edgecam.models import artifacts, store
from edgecam.sinks.base import Sink

SETTLE = 20  # frames each loop runs before its clock starts: caches, XNNPACK's plans, the decoder
CLIP_FRAMES = 240


def write_clip(path: Path, frames: int = CLIP_FRAMES) -> Path:
    """The demo clip's first `frames` frames as a 1280×720 MP4 (OpenCV's mp4v encoder)."""
    from edgecam.base.samples import DemoClip

    clip = DemoClip(1280, 720)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, (1280, 720))
    if not writer.isOpened():
        raise EdgecamError("OpenCV cannot write an MP4 (mp4v) here: pass --clip FILE.mp4")
    for i in range(frames):
        writer.write(cv2.cvtColor(clip.frame(i % len(clip)), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


class Frames:
    """The clip's frames, read as the peers read them: cv2.VideoCapture, started again at its end."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.capture = cv2.VideoCapture(str(clip))

    def read(self) -> np.ndarray:
        ok, image = self.capture.read()
        if not ok:
            self.capture.release()
            self.capture = cv2.VideoCapture(str(self.clip))
            ok, image = self.capture.read()
            if not ok:
                raise EdgecamError(f"video file {self.clip} has no readable frames: check the --clip path")
        return image


def timed(step, frames: int) -> float:
    """FPS of `step()` over `frames` calls after SETTLE untimed ones."""
    for _ in range(SETTLE):
        step()
    started = time.perf_counter()
    for _ in range(frames):
        step()
    return frames / (time.perf_counter() - started)


def tflite_example(clip: Path, model_file: Path, threads: int, frames: int, labels: list[str]) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_file), num_threads=threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    sink = interpreter.get_output_details()[0]["index"]
    size = int(source["shape"][1])
    video = Frames(clip)
    fps = [0.0]
    last = [time.perf_counter()]

    def step() -> None:
        image = cv2.flip(video.read(), 1)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        interpreter.set_tensor(source["index"], np.expand_dims(cv2.resize(rgb, (size, size)), 0))
        interpreter.invoke()
        scores = interpreter.get_tensor(sink)[0]
        best = int(np.argmax(scores))
        now = time.perf_counter()
        fps[0], last[0] = 1.0 / max(now - last[0], 1e-9), now
        cv2.putText(image, f"{labels[best]} {scores[best]:.2f}", (24, 48), cv2.FONT_HERSHEY_SIMPLEX,
                    1.0, (0, 255, 0), 2)
        cv2.putText(image, f"FPS {fps[0]:.1f}", (24, 96), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 255, 0), 2)

    return timed(step, frames)


def pytorch_tutorial(clip: Path, spec: store.ModelSpec, threads: int, frames: int) -> float:
    import torch

    from edgecam.models import build

    torch.set_num_threads(threads)
    net = build.network(spec)
    mean = torch.tensor(spec.mean).view(3, 1, 1)
    std = torch.tensor(spec.std).view(3, 1, 1)
    video = Frames(clip)

    def step() -> None:
        rgb = cv2.cvtColor(cv2.resize(video.read(), (spec.input, spec.input)), cv2.COLOR_BGR2RGB)
        tensor = (torch.from_numpy(rgb).permute(2, 0, 1).float() - mean) / std
        with torch.no_grad():
            net(tensor.unsqueeze(0)).argmax(1)

    return timed(step, frames)


class Stopwatch(Sink):
    """Ends the run after SETTLE + `frames` frames; FPS over the last `frames`."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.count = 0
        self.started = self.ended = 0.0

    def write(self, frame: Frame, prediction: Prediction) -> None:
        self.count += 1
        if self.count == SETTLE:
            self.started = time.perf_counter()
        elif self.count == SETTLE + self.frames:
            self.ended = time.perf_counter()
            self.stop_requested = True

    @property
    def fps(self) -> float:
        return self.frames / (self.ended - self.started) if self.ended else 0.0


def edgecam_run(clip: Path, model: str, threads: int, frames: int) -> float:
    from edgecam.base.options import resolve
    from edgecam.runtime import pipeline

    watch = Stopwatch(frames)
    settings = resolve(pipeline.run_options(), {"source": str(clip), "loop": True, "model": model,
                                                "threads": threads, "headless": True})
    pipeline.run(settings, extra_sinks=[watch])
    return watch.fps


def _run(loop: str, clip: Path, model: str, threads: int, frames: int, extra: str = "") -> dict:
    command = [sys.executable, "-m", __name__, loop, str(clip), model, str(threads), str(frames), extra]
    # edgecam's defaults, as a user gets them: no $EDGECAM_BACKEND pin
    env = {k: v for k, v in os.environ.items() if k != "EDGECAM_BACKEND"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise EdgecamError(f"the {loop} loop failed: {lines[-1] if lines else 'no output'}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def benchmark(model: str, threads: int, frames: int = 200, rounds: int = 5,
              clip: Path | None = None) -> dict:
    spec = store.get(model)
    if clip is not None:
        Frames(clip).read()  # a missing or unreadable --clip fails here, in one line, before any build
    builds = {kind: str(artifacts.ensure(spec, kind)) for kind in ("litert", "litert-int8")}
    # what `edgecam run` uses with no --backend: auto's choice, measured once before anything is timed
    chosen = auto.choose(spec, threads)
    loops = [("tflite-example", builds["litert"]), ("tflite-example-int8", builds["litert-int8"]),
             ("pytorch-tutorial", ""), ("edgecam", "")]
    results: dict[str, list[float]] = {name: [] for name, _ in loops}
    progress = Progress(f"edgecam run against the peers' loops ({model})", rounds * len(loops))
    with tempfile.TemporaryDirectory() as tmp:
        video = clip or write_clip(Path(tmp) / "clip.mp4")
        for _ in range(rounds):
            for name, extra in loops:
                loop = "tflite-example" if name.startswith("tflite") else name
                found = _run(loop, video, model, threads, frames, extra)
                results[name].append(found["fps"])
                progress.advance(note=f"{name} {found['fps']:.1f} FPS")
    progress.finish()
    medians = {name: statistics.median(values) for name, values in results.items()}
    peer = max(("tflite-example", "tflite-example-int8"), key=lambda n: medians[n])
    ratios = [e / max(a, b) for e, a, b in zip(results["edgecam"], results["tflite-example"],
                                                results["tflite-example-int8"], strict=True)]
    return {"model": model, "threads": threads, "frames": frames, "rounds": rounds,
            "clip": str(clip) if clip else f"the demo clip, {CLIP_FRAMES} frames of 1280x720 MP4",
            "edgecam_backend": chosen, "fps": medians, "fps_runs": results, "fastest_peer": peer,
            "ratio_vs_tflite_example": statistics.median(ratios), "ratio_runs": ratios}


def table(report: dict) -> str:
    lines = [f"{report['model']}, {report['threads']} threads, {report['clip']}, "
             f"{report['rounds']} rounds of {report['frames']} frames (medians)"]
    names = {"tflite-example": "TFLite example loop, LiteRT fp32",
             "tflite-example-int8": "TFLite example loop, LiteRT int8",
             "pytorch-tutorial": "PyTorch tutorial loop, eager fp32",
             "edgecam": f"edgecam run (auto: {report['edgecam_backend']})"}
    for key, label in names.items():
        lines.append(f"  {label:<40} {report['fps'][key]:7.1f} FPS")
    lines.append(f"  edgecam / fastest TFLite example loop    {report['ratio_vs_tflite_example']:.2f}x "
                 "(median of the rounds' ratios)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    loop, clip, model, threads, frames = argv[0], Path(argv[1]), argv[2], int(argv[3]), int(argv[4])
    spec = store.get(model)
    if loop == "tflite-example":
        result = {"fps": tflite_example(clip, Path(argv[5]), threads, frames, spec.labels)}
    elif loop == "pytorch-tutorial":
        result = {"fps": pytorch_tutorial(clip, spec, threads, frames)}
    else:
        result = {"fps": edgecam_run(clip, model, threads, frames)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
