"""`edgecam bench` as a user runs it: the latency table and its JSON and plot, and the pipeline
against inference alone. What it measures is never asserted here (this host is shared and noisy);
that every figure is there, and consistent with the others, is."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from conftest import edgecam

from edgecam.bench.pipeline import SETTLE_FRAMES


@pytest.mark.slow
def test_latency_bench_reports_every_backend_against_the_machine_and_torch_eager(
        model_cache: Path, tmp_path: Path) -> None:
    out, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    result = edgecam("bench", "--models", "efficientnet_lite0", "--backends",
                     "onnx,onnx-int8,torch-eager,opencv-dnn", "--runs", "10", "--json", str(out),
                     "--plot", str(plot), check=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["machine"]["gemm_gmacs"] > 0 and report["machine"]["threads"] >= 1
    rows = {r["backend"]: r for r in report["results"]}
    assert set(rows) == {"onnx", "onnx-int8", "torch-eager", "opencv-dnn"}
    for backend, row in rows.items():
        assert "error" not in row, row
        assert 0 < row["median_ms"] <= row["p95_ms"]
        assert row["fps"] == pytest.approx(1000 / row["median_ms"])
        assert row["gmacs"] == pytest.approx(row["macs"] / row["median_ms"] / 1e6)
        assert row["efficiency"] == pytest.approx(row["gmacs"] / report["machine"]["gemm_gmacs"])
        assert row["vs_torch_eager"] == pytest.approx(rows["torch-eager"]["median_ms"] / row["median_ms"])
        assert row["peak_rss_mb"] > 20
        assert abs(row["params"] / 4.65e6 - 1) < 0.03 and abs(row["macs"] / 385e6 - 1) < 0.05
        assert f"| efficientnet_lite0 | {backend} |" in result.stdout
    # every backend sees the same content in the same frames (the int8 model may differ once)
    assert sum(a != b for a, b in zip(rows["onnx"]["top1"], rows["onnx-int8"]["top1"], strict=True)) <= 1
    assert rows["onnx"]["top1"] == rows["torch-eager"]["top1"] == rows["opencv-dnn"]["top1"]
    # built beforehand, so the onnxruntime processes never held torch (a build imports it)
    assert rows["onnx"]["peak_rss_mb"] < rows["torch-eager"]["peak_rss_mb"] * 0.6
    assert rows["onnx-int8"]["peak_rss_mb"] < rows["torch-eager"]["peak_rss_mb"] * 0.6
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_pipeline_bench_pairs_the_whole_loop_with_inference_alone_in_one_run(
        model_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    result = edgecam("bench", "--pipeline", "--frames", "30", "--rounds", "3", "--json", str(out),
                     check=True, timeout=600)
    report = json.loads(out.read_text())
    assert report["log"] and report["preview"] and report["source"] == "1280x720 frames in memory"
    alone, whole = report["inference_fps_runs"], report["pipeline_fps_runs"]
    assert len(alone) == len(whole) == 3
    assert report["ratio_runs"] == pytest.approx([w / a for w, a in zip(whole, alone, strict=True)])
    assert report["ratio"] == pytest.approx(statistics.median(report["ratio_runs"]))
    assert report["inference_fps"] == pytest.approx(statistics.median(alone))
    run = report["pipeline"]
    assert run["frames"] == 3 * (30 + SETTLE_FRAMES)  # one run, ended by the last round
    stages = run["stages_ms"]
    assert set(stages) >= {"capture", "preprocess", "inference", "sinks", "wait"}
    # the pauses in which inference alone was timed are not counted as the outputs' time
    assert 0 <= stages["sinks"] < stages["inference"]
    assert 0 < run["cpu_percent"] <= 100 * 64
    assert run["preview_bytes"] > 10_000  # the viewer received JPEGs all along
    assert "ratio" in result.stdout and "per frame" in result.stdout


def test_bench_of_an_unknown_model_fails_before_measuring_anything() -> None:
    result = edgecam("bench", "--models", "mobilenet_v9")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("edgecam: error: ") and "mobilenet_v9" in last


@pytest.mark.slow
def test_peers_bench_runs_edgecam_and_the_peers_loops_on_the_same_clip(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    result = edgecam("bench", "--peers", "--frames", "20", "--rounds", "2", "--json", str(out),
                     check=True, timeout=1200)
    report = json.loads(out.read_text())
    loops = {"tflite-example", "tflite-example-int8", "pytorch-tutorial", "edgecam"}
    assert set(report["fps"]) == set(report["fps_runs"]) == loops
    for name, runs in report["fps_runs"].items():
        assert len(runs) == 2 and all(fps > 0 for fps in runs), name
        assert report["fps"][name] == pytest.approx(statistics.median(runs))
    runs = report["fps_runs"]
    assert report["ratio_runs"] == pytest.approx(
        [e / max(a, b) for e, a, b in zip(runs["edgecam"], runs["tflite-example"],
                                          runs["tflite-example-int8"], strict=True)])
    assert report["ratio_vs_tflite_example"] == pytest.approx(statistics.median(report["ratio_runs"]))
    assert report["edgecam_backend"] in {"onnx", "onnx-int8", "litert", "litert-int8", "ncnn", "torchscript"}
    assert f"edgecam run (auto: {report['edgecam_backend']})" in result.stdout


def test_peers_bench_refuses_a_clip_it_cannot_read_before_building_anything(tmp_path: Path) -> None:
    result = edgecam("bench", "--peers", "--clip", str(tmp_path / "none.mp4"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"edgecam: error: video file {tmp_path / 'none.mp4'} has no readable frames: check the --clip path")


def test_cameras_bench_sets_one_process_against_one_per_camera() -> None:
    """Every side (inference alone too) really classifies in the same measured window, and the
    one process's RSS is its own, not the sum of the separate processes'."""
    from edgecam.bench import cameras

    report = cameras.benchmark("efficientnet_lite0", "onnx", 2, [2], rounds=1, seconds=1.0)
    (row,) = report["rows"]
    assert row["cameras"] == 2 and row["one_process_fps"] > 0 and row["processes_fps"] > 0
    assert row["ratio"] == pytest.approx(row["one_process_fps"] / row["processes_fps"])
    assert row["inference_alone_fps"] > 0
    assert row["bound"] == pytest.approx(row["inference_alone_fps"] / row["processes_fps"])
    assert row["one_process_rss_mb"] < row["processes_rss_mb"]
    assert "one process" in cameras.table(report)
    refused = edgecam("bench", "--pipeline", "--sources", "0,x")
    assert refused.returncode == 2 and "--sources 0,x: give camera counts from 1 to 16" in refused.stderr


def test_startup_peak_rss_is_the_runs_own_not_the_benchmarks(tmp_path: Path) -> None:
    """A child's rusage ru_maxrss starts from the RSS of the process that forked it: a benchmark
    that holds 600 MB must still report the ~150 MB of `edgecam run` itself."""
    import numpy as np

    from edgecam.bench import startup

    held = np.ones(600 * 2**20 // 8)  # touched: resident in this process
    row = startup.one_start("efficientnet_lite0", "demo", tmp_path / "log.jsonl")
    assert held.sum() > 0
    assert 30 < row["peak_rss_mb"] < 500 and row["first_prediction_s"] > 0
