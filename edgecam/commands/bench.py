"""`edgecam bench`: latency per model and backend, the pipeline against inference, start-up, and
the memory a model build takes."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edgecam.base import health
from edgecam.base.errors import UsageError
from edgecam.base.machine import physical_cores

log = logging.getLogger(__name__)

DEFAULT_MODELS = "efficientnet_lite0,mobilenet_v2_1.0"
DEFAULT_BACKENDS = "onnx,onnx-int8,litert,litert-int8,ncnn,torchscript,torch-eager,opencv-dnn,auto"


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value!r}")
    return number


def camera_counts(text: str) -> list[int]:
    counts = [c.strip() for c in text.split(",")]
    if not all(c.isdigit() and 1 <= int(c) <= 16 for c in counts):
        raise UsageError(f"--sources {text}: give camera counts from 1 to 16, e.g. 2,4")
    return [int(c) for c in counts]


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="measure latency, pipeline overhead and start-up",
                                description="Benchmarks measured on this machine, in one run.")
    mode = bench.add_mutually_exclusive_group()
    mode.add_argument("--pipeline", action="store_true",
                      help="the whole run loop on a 1280x720 source against inference alone")
    mode.add_argument("--peers", action="store_true",
                      help="edgecam run with its defaults against the TFLite example's and the PyTorch "
                      "tutorial's loops on a 1280x720 MP4 clip")
    mode.add_argument("--startup", action="store_true",
                      help="launch to first logged prediction, and peak RSS, of edgecam run")
    mode.add_argument("--build-memory", action="store_true",
                      help="peak RSS of `edgecam models build` on an empty cache: fp32, --int8, LiteRT, ncnn")
    mode.add_argument("--soak", type=positive, metavar="SECONDS",
                      help="run the demo with log and preview this long, sampling RSS every 10 s")
    bench.add_argument("--models", default=DEFAULT_MODELS, metavar="A,B",
                       help=f"models to measure (default: {DEFAULT_MODELS}); with --pipeline or "
                       "--startup the first one")
    bench.add_argument("--backends", default=DEFAULT_BACKENDS, metavar="A,B",
                       help=f"backends to compare (default: {DEFAULT_BACKENDS}); with --pipeline "
                       "the first one")
    bench.add_argument("--threads", type=positive, default=physical_cores(), metavar="N",
                       help="inference threads (default: the physical cores this process may use)")
    bench.add_argument("--runs", type=positive, default=100, metavar="N",
                       help="timed single-frame inferences per model and backend (default: 100)")
    bench.add_argument("--frames", type=positive, default=100, metavar="N",
                       help="--pipeline: frames of pipeline, then of inference alone, per round; --peers: "
                       "frames each loop is timed for "
                       "(default: 100)")
    bench.add_argument("--rounds", type=positive, metavar="N",
                       help="--pipeline: rounds, each pipeline then inference alone (default: 30); "
                       "--peers: rounds, each running every loop once (default: 5)")
    bench.add_argument("--clip", type=Path, metavar="FILE.mp4",
                       help="--peers: the video to classify (default: the demo clip as MP4)")
    bench.add_argument("--no-preview", action="store_true", help="--pipeline without the web preview")
    bench.add_argument("--sources", metavar="N[,N]",
                       help="--pipeline: N in-memory 1280x720 cameras in one process against N processes "
                       "of one camera each, same model and backend, and against the one process's "
                       "inference alone (e.g. 2,4)")
    bench.add_argument("--allow-untrained", action="store_true",
                       help="also measure networks that have no trained weights here")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="PNG", help="latency against MACs, one marker per model "
                       "and backend")
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    board = health.read()  # again at the end: a throttled or under-volted board measures slow
    models = [m for m in args.models.split(",") if m]
    backend_names = [b for b in args.backends.split(",") if b]
    if args.pipeline and args.sources:
        from edgecam.bench import cameras

        report = cameras.benchmark(models[0], backend_names[0], args.threads, camera_counts(args.sources),
                                   args.rounds or 3, allow_untrained=args.allow_untrained)
        print(cameras.table(report))
    elif args.pipeline:
        from edgecam.bench import pipeline

        report = pipeline.benchmark(models[0], backend_names[0], args.threads, args.frames,
                                    args.rounds or 30, preview=not args.no_preview,
                                    allow_untrained=args.allow_untrained)
        print(pipeline.table(report))
    elif args.peers:
        from edgecam.bench import peers

        report = peers.benchmark(models[0], args.threads, args.frames, args.rounds or 5, args.clip)
        print(peers.table(report))
    elif args.soak:
        from edgecam.bench import soak

        report = soak.soak(models[0], args.soak)
        print(soak.table(report))
    elif args.build_memory:
        from edgecam.bench import build_memory

        report = build_memory.benchmark(models[0])
        print(build_memory.table(report))
    elif args.startup:
        from edgecam.bench import startup

        rows = startup.benchmark(models[0], ["demo"])
        report = {"startup": rows}
        print(startup.table(rows))
    else:
        from edgecam.bench import latency

        report = latency.benchmark(models, backend_names, args.threads, args.runs,
                                   args.allow_untrained)
        print(latency.table(report))
        if args.plot:
            latency.plot(report, args.plot)
            print(f"plot: {args.plot}")
    slowed = health.slowed_during(board, health.read())
    if slowed:
        log.warning(slowed)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
