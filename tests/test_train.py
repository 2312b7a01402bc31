"""Acceptance of issue 8: four classes taught from crops of real photos (skimage's cat, espresso,
rocket and astronaut), then used by name through run, classify and eval like any built-in model."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import edgecam, jpeg_bomb, photo, read_jsonl

CLASSES = ("astronaut", "chelsea", "coffee", "rocket")
MODEL = "photos4"


def write_crops(folder: Path, name: str, count: int, rng: np.random.Generator) -> None:
    """`count` random crops (50-90% of each side) of photo `name`, some mirrored, as JPEGs."""
    image = photo(name)[..., :3]
    height, width = image.shape[:2]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        scale = rng.uniform(0.5, 0.9)
        h, w = int(height * scale), int(width * scale)
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        crop = image[top:top + h, left:left + w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        cv2.imwrite(str(folder / f"{name}_{i}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="session")
def photo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATASET/train and DATASET/val (different random crops) and, beside them, held-out crops in
    one flat folder (as a camera folder would be) that training never sees."""
    root = tmp_path_factory.mktemp("photo-dataset")
    rng = np.random.default_rng(8)
    for name in CLASSES:
        write_crops(root / "dataset" / "train" / name, name, 6, rng)
        write_crops(root / "dataset" / "val" / name, name, 4, rng)
        write_crops(root / "held", name, 2, rng)
    return root


@pytest.fixture(scope="session")
def trained(photo_dataset: Path) -> str:
    """`edgecam train` once for the session (with the int8 copy); its stdout."""
    result = edgecam("train", str(photo_dataset / "dataset"), "--out", MODEL, "--epochs", "15",
                     "--int8")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_training_reports_each_epoch_and_reaches_90_percent(trained: str, model_cache: Path) -> None:
    epochs = re.findall(r"^epoch +(\d+)/15 .*train +([\d.]+)% +val +([\d.]+)%$", trained, re.M)
    assert [int(e[0]) for e in epochs] == list(range(1, 16))
    assert float(epochs[-1][2]) >= 90.0
    entry = tomllib.loads((model_cache / "user_models.toml").read_text())[MODEL]
    assert entry["val_accuracy"] >= 0.9
    assert (entry["train_images"], entry["val_images"], entry["classes"]) == (24, 16, 4)
    assert (model_cache / entry["labels"]).read_text().split() == list(CLASSES)


@pytest.mark.slow
def test_run_and_classify_name_held_out_crops(trained: str, photo_dataset: Path,
                                              tmp_path: Path) -> None:
    held = sorted((photo_dataset / "held").iterdir())
    log = tmp_path / "run.jsonl"
    result = edgecam("run", "--source", str(photo_dataset / "held"), "--model", MODEL, "--headless",
                     "--log", str(log))
    assert result.returncode == 0, result.stderr
    records = read_jsonl(log)
    assert len(records) == len(held)
    for record in records:
        assert record["model"] == MODEL
        assert record["top"][0]["label"] == Path(record["source"]).name.split("_")[0]
    for model in (MODEL, f"{MODEL}-int8"):
        classified = json.loads(edgecam("classify", "--json", "--model", model, *map(str, held),
                                        check=True).stdout)
        assert [c["top"][0]["label"] for c in classified] == [p.name.split("_")[0] for p in held]


@pytest.mark.slow
def test_eval_reports_accuracy_per_class_and_plots(trained: str, photo_dataset: Path,
                                                   tmp_path: Path) -> None:
    plot = tmp_path / "confusion.png"
    result = edgecam("eval", str(photo_dataset / "dataset" / "val"), "--model", MODEL, "--json",
                     "--plot", str(plot), check=True)
    report = json.loads(result.stdout)
    assert report["images"] == 16 and report["accuracy"] >= 0.9
    assert [c["label"] for c in report["classes"]] == list(CLASSES)
    assert all(c["images"] == 4 and c["recall"] >= 0.75 for c in report["classes"])
    assert np.array(report["confusion"]).sum() == 16
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] >= 300


@pytest.mark.slow
def test_the_trained_model_is_in_the_manifest(trained: str) -> None:
    # What `edgecam models list` lists (the CLI itself also profiles every network: too slow here).
    from edgecam.models import artifacts, store

    store.manifest.cache_clear()
    spec = store.manifest()[MODEL]
    assert spec.path is not None and artifacts.ensure(spec, "onnx") == spec.path
    assert (spec.input, spec.labels) == (224, list(CLASSES))
    assert store.verified(spec, spec.path)


@pytest.mark.slow
def test_a_flat_dataset_is_split_and_its_features_come_from_the_cache(trained: str,
                                                                      photo_dataset: Path) -> None:
    # The same photos in one folder per class: every feature is cached by the first training.
    result = edgecam("train", str(photo_dataset / "dataset" / "train"), "--out", f"{MODEL}-flat",
                     "--epochs", "3", "--val-split", "0.2", check=True)
    assert "features" not in result.stderr
    assert "20 training and 4 validation images" in result.stdout


@pytest.mark.slow
def test_eval_skips_unreadable_images_and_refuses_unknown_classes(trained: str, photo_dataset: Path,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "eval" / "coffee"
    folder.mkdir(parents=True)
    for crop in (photo_dataset / "dataset" / "val" / "coffee").iterdir():
        (folder / crop.name).write_bytes(crop.read_bytes())
    (folder / "truncated.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    jpeg_bomb(folder / "huge.jpg")  # refused from its header, never decoded
    result = edgecam("eval", str(tmp_path / "eval"), "--model", MODEL, "--json", check=True)
    report = json.loads(result.stdout)
    assert (report["images"], report["unreadable"]) == (4, 2)
    assert "huge.jpg is 60000×60000 pixels" in result.stderr
    (tmp_path / "eval" / "teapot").mkdir()
    (tmp_path / "eval" / "teapot" / "a.jpg").write_bytes((folder / "coffee_0.jpg").read_bytes())
    result = edgecam("eval", str(tmp_path / "eval"), "--model", MODEL)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"edgecam: error: class folder 'teapot' of {tmp_path / 'eval'} is not one of the 4 classes "
        "(astronaut, chelsea, coffee, rocket): rename or remove it")


@pytest.mark.slow
def test_eval_and_classify_of_a_trained_model_never_import_torch(trained: str,
                                                                  photo_dataset: Path) -> None:
    code = f"""
import sys
from edgecam.cli import main
assert main(["eval", {str(photo_dataset / "dataset" / "val")!r}, "--model", "{MODEL}"]) == 0
assert main(["classify", {str(next((photo_dataset / "held").iterdir()))!r}, "--model", "{MODEL}"]) == 0
assert "torch" not in sys.modules, "torch was imported"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
