"""What is classified and what is reported: --roi classifies one region of the frame (and the
overlay frames it), --only/--ignore/--min-score/--topk 0 choose the labels, and a frame where none
passes makes no event. On real photos and real runs of the demo."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import edgecam, photo, read_jsonl

from edgecam.base.frame import Label, Prediction
from edgecam.base.preprocess import Roi
from edgecam.base.samples import SHOTS
from edgecam.runtime.classifier import Selection
from edgecam.sinks.events import EventDetector
from edgecam.sinks.overlay import ROI_COLOUR, draw_overlay


@pytest.fixture(scope="module")
def cat_and_coffee(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One frame: the cat photo on the left half, the coffee on the right."""
    halves = [cv2.resize(photo(name), (448, 448), interpolation=cv2.INTER_AREA)
              for name in ("chelsea", "coffee")]
    path = tmp_path_factory.mktemp("roi") / "cat-and-coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(halves), cv2.COLOR_RGB2BGR))
    return path


def top_labels(*args: str) -> list[str]:
    result = edgecam("classify", "--json", *args)
    assert result.returncode == 0, result.stderr
    return [t["label"] for t in json.loads(result.stdout)["top"]]


def test_roi_classifies_the_chosen_half(cat_and_coffee: Path, tmp_path: Path) -> None:
    assert top_labels(str(cat_and_coffee), "--roi", "0,0,0.5,1")[0] in SHOTS["chelsea"]
    assert top_labels(str(cat_and_coffee), "--roi", "448,0,448,448")[0] == "espresso"
    # the same through a run, whose records and picture know the region
    log = tmp_path / "run.jsonl"
    edgecam("run", "--headless", "--source", str(cat_and_coffee), "--roi", "0.5,0,0.5,1", "--log", str(log),
            check=True)
    assert [r["top"][0]["label"] for r in read_jsonl(log)] == ["espresso"]


def test_a_region_outside_the_frame_is_one_line(cat_and_coffee: Path) -> None:
    result = edgecam("classify", str(cat_and_coffee), "--roi", "800,0,400,400")
    assert result.returncode == 1
    assert result.stderr.strip() == ("edgecam: error: --roi 800,0,400,400 does not fit in the 896x448 frame: "
                                     "give a region inside it, or fractions of the frame "
                                     "(e.g. 0.25,0.25,0.5,0.5)")
    for bad in ("0.5,0,0.6,1", "1,2,3", "10.5,0,100,100"):
        result = edgecam("run", "--headless", "--frames", "1", "--roi", bad)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, bad


def test_the_overlay_frames_the_region() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    prediction = Prediction([Label("tabby", 281, 0.9)], 5.0, extra={"roi": (0.5, 0.0, 1.0, 1.0)})
    drawn = draw_overlay(image, prediction)
    assert tuple(drawn[200, 320]) == ROI_COLOUR and tuple(drawn[200, 639]) == ROI_COLOUR
    assert not drawn[200, 400].any()  # inside the frame: the picture itself


def test_only_espresso_logs_only_espresso_events(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    edgecam("run", "--headless", "--frames", "60", "--events", "change", "--only", "Espresso",
            "--log", str(log), check=True)
    records = read_jsonl(log)
    assert records and all(r["event"]["label"] == "espresso" for r in records)
    assert all([t["label"] for t in r["top"]] == ["espresso"] for r in records)


def test_topk_0_reports_every_label_above_min_score_and_no_other(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    edgecam("run", "--headless", "--frames", "20", "--topk", "0", "--min-score", "0.1", "--log", str(log),
            check=True)
    records = read_jsonl(log)
    assert len(records) == 20
    for r in records:
        scores = [t["score"] for t in r["top"]]
        assert all(s >= 0.1 for s in scores) and scores == sorted(scores, reverse=True)
    photo_file = tmp_path / "coffee.png"
    cv2.imwrite(str(photo_file), cv2.cvtColor(photo("coffee"), cv2.COLOR_RGB2BGR))
    every = json.loads(edgecam("classify", "--json", "--topk", "1000", str(photo_file), check=True).stdout)
    chosen = json.loads(edgecam("classify", "--json", "--topk", "0", "--min-score", "0.1", str(photo_file),
                                check=True).stdout)
    assert chosen["top"] == [t for t in every["top"] if t["score"] >= 0.1]
    ignored = top_labels(str(photo_file), "--ignore", "espresso,968")
    assert "espresso" not in ignored and len(ignored) == 5


def test_unknown_labels_name_their_nearest() -> None:
    result = edgecam("run", "--headless", "--frames", "1", "--only", "expresso")
    assert result.returncode == 2
    assert result.stderr.strip() == ("edgecam: error: --only: the model has no label 'expresso': did you "
                                     "mean espresso, espresso maker?")
    result = edgecam("run", "--headless", "--frames", "1", "--gpio", "17=tabby kat")
    assert result.returncode == 2 and "--gpio: the model has no label 'tabby kat'" in result.stderr
    result = edgecam("run", "--headless", "--frames", "1", "--topk", "0", "--log", "x.csv")
    assert result.returncode == 2 and "CSV" in result.stderr


def test_selection_keeps_the_allowed_best_above_the_score() -> None:
    labels = ["a", "b", "c", "d"]
    probabilities = np.array([0.1, 0.5, 0.15, 0.25], np.float32)
    assert [t.label for t in Selection(2).pick(probabilities, labels)] == ["b", "d"]
    assert [t.label for t in Selection(0, min_score=0.15).pick(probabilities, labels)] == ["b", "d", "c"]
    only = Selection.of(labels, 5, only=("a", "C"))
    assert [t.label for t in only.pick(probabilities, labels)] == ["c", "a"]
    ignore = Selection.of(labels, 1, ignore=("1",))
    assert [t.label for t in ignore.pick(probabilities, labels)] == ["d"]
    assert Selection(5, min_score=0.9).pick(probabilities, labels) == []


def frame_with(*top: tuple[str, float]) -> Prediction:
    return Prediction([Label(label, i, score) for i, (label, score) in enumerate(top)], 1.0)


def test_a_frame_with_no_label_makes_no_event_and_the_next_label_is_news() -> None:
    detector = EventDetector("change")
    events = [detector.update(frame_with(*top)) for top in
              ([("espresso", 0.8)], [], [], [("espresso", 0.7)], [("espresso", 0.9)])]
    assert [e and e["label"] for e in events] == ["espresso", None, None, "espresso", None]
    threshold = EventDetector("threshold", threshold=0.5)
    first, fell = threshold.update(frame_with(("cat", 0.8))), threshold.update(frame_with())
    assert first["above"] and fell == {"kind": "threshold", "label": "cat", "score": 0.0,
                                       "previous": "cat", "above": False}


def test_roi_fractions_and_pixels_give_the_same_box() -> None:
    assert Roi.parse("0.5,0,0.5,1").box(896, 448) == (448, 0, 896, 448)
    assert Roi.parse([448, 0, 448, 448]).box(896, 448) == (448, 0, 896, 448)
