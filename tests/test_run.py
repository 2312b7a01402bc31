"""`edgecam run`: the demo clip, video files and image folders classified end to end, logged to JSONL."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import pytest
from conftest import edgecam, read_jsonl, require_encoder

from edgecam.base.samples import SHOTS, DemoClip

LOG_FIELDS = {"time", "frame", "source", "model", "backend", "top", "inference_ms", "fps"}


def top1_by_shot(records: list[dict]) -> dict[str, Counter]:
    shots: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        shots[r["source"].removeprefix("demo/")][r["top"][0]["label"]] += 1
    return shots


@pytest.mark.slow
def test_demo_clip_shows_a_cat_an_espresso_and_a_rocket(tmp_path: Path) -> None:
    log = tmp_path / "demo.jsonl"
    result = edgecam("run", "--source", "demo", "--headless", "--frames", "300", "--log", str(log))
    assert result.returncode == 0, result.stderr
    records = read_jsonl(log)
    assert len(records) == 300
    shots = top1_by_shot(records)
    for shot in ("chelsea", "coffee", "rocket"):
        labels = shots[shot]
        assert sum(labels.values()) >= 30, f"too few {shot} frames: {dict(shots)}"
        right = sum(n for label, n in labels.items() if label in SHOTS[shot])
        assert right / sum(labels.values()) >= 0.9, f"{shot}: {labels}"


def test_log_has_exactly_one_valid_line_per_classified_frame(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    result = edgecam("run", "--headless", "--frames", "100", "--topk", "3", "--log", str(log))
    assert result.returncode == 0, result.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 100
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
    for r in records:
        assert set(r) == LOG_FIELDS
        assert r["model"] == "efficientnet_lite0" and r["backend"] == "onnx"
        assert len(r["top"]) == 3
        scores = [t["score"] for t in r["top"]]
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
        assert set(r["top"][0]) == {"label", "index", "score"}
        assert r["inference_ms"] > 0
    assert records[-1]["fps"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("model", "side"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_other_lite_models_run_the_clip_with_their_own_weights(
        tmp_path: Path, model_cache: Path, model: str, side: int) -> None:
    log = tmp_path / "run.jsonl"
    result = edgecam("run", "--model", model, "--headless", "--frames", "140", "--log", str(log))
    assert result.returncode == 0, result.stderr
    records = read_jsonl(log)
    assert len(records) == 140 and {r["model"] for r in records} == {model}
    meta = json.loads((model_cache / f"{model}.onnx.json").read_text())
    assert meta["input"] == side
    cats = top1_by_shot(records)["chelsea"]
    assert sum(n for label, n in cats.items() if label in SHOTS["chelsea"]) >= 0.9 * sum(cats.values())


def test_video_file_is_classified_frame_by_frame(tmp_path: Path) -> None:
    clip = DemoClip(640, 360, shot_frames=12)
    video = tmp_path / "clip.mp4"
    require_encoder("mp4v")
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 360))
    for i in range(24):  # a cat, then an espresso
        writer.write(cv2.cvtColor(clip.frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    log = tmp_path / "video.jsonl"
    result = edgecam("run", "--source", str(video), "--headless", "--log", str(log))
    assert result.returncode == 0, result.stderr
    records = read_jsonl(log)
    assert [r["frame"] for r in records] == list(range(24))  # a file drops nothing
    assert all(r["top"][0]["label"] in SHOTS["chelsea"] for r in records[:12])
    assert all(r["top"][0]["label"] in SHOTS["coffee"] for r in records[12:])


def test_image_folder_and_single_image(tmp_path: Path, photo_files: dict[str, Path]) -> None:
    log = tmp_path / "folder.jsonl"
    folder = photo_files["chelsea"].parent
    result = edgecam("run", "--source", str(folder), "--headless", "--log", str(log))
    assert result.returncode == 0, result.stderr
    by_file = {Path(r["source"]).stem: r["top"][0]["label"] for r in read_jsonl(log)}
    assert by_file["chelsea"] in SHOTS["chelsea"]
    assert by_file["coffee"] == "espresso"
    assert by_file["rocket"] in SHOTS["rocket"]

    one = tmp_path / "one.jsonl"
    result = edgecam("run", "--source", str(photo_files["coffee"]), "--headless", "--log", str(one))
    assert result.returncode == 0, result.stderr
    assert [r["top"][0]["label"] for r in read_jsonl(one)] == ["espresso"]


def test_duration_stops_a_live_source(tmp_path: Path) -> None:
    log = tmp_path / "d.jsonl"
    result = edgecam("run", "--headless", "--duration", "1.5", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert 1 <= len(read_jsonl(log)) <= 60  # a 30 fps camera for 1.5 s, whatever the CPU


def test_config_file_sets_options_and_flags_win(tmp_path: Path, photo_files: dict[str, Path]) -> None:
    log = tmp_path / "cfg.jsonl"
    config = tmp_path / "edgecam.toml"
    config.write_text(f'source = "{photo_files["coffee"]}"\ntopk = 2\nheadless = true\n'
                      f'log = "{log}"\n')
    result = edgecam("run", "--config", str(config), "--topk", "4")
    assert result.returncode == 0, result.stderr
    records = read_jsonl(log)
    assert len(records) == 1 and len(records[0]["top"]) == 4  # the flag beat the config's 2
    assert records[0]["source"] == str(photo_files["coffee"])
