"""Every bad input a user can give gets one clear line on stderr and a non-zero exit, no traceback."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import edgecam


def assert_one_line_error(result, exit_code: int, *words: str) -> str:
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgecam: error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_unknown_model_lists_the_known_ones() -> None:
    line = assert_one_line_error(edgecam("run", "--model", "resnet9000", "--frames", "1"), 2,
                                 "resnet9000")
    assert "efficientnet_lite0" in line and "efficientnet_lite2" in line


def test_unreadable_sources(tmp_path: Path) -> None:
    assert_one_line_error(edgecam("run", "--source", str(tmp_path / "nope.mp4")), 1, "nope.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    assert_one_line_error(edgecam("run", "--source", str(garbage), "--headless"), 1, "garbage.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(edgecam("run", "--source", str(empty), "--headless"), 1, "no images")
    assert_one_line_error(edgecam("run", "--source", "ftp://camera/1"), 2, "ftp://")


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    assert_one_line_error(edgecam("run", "--model", str(tmp_path / "missing.onnx"), "--labels",
                                  str(labels)), 1, "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    assert_one_line_error(edgecam("run", "--model", str(corrupt), "--labels", str(labels),
                                  "--headless", "--frames", "1"), 1, "corrupt.onnx")
    assert_one_line_error(edgecam("run", "--model", str(corrupt)), 2, "--labels")


def test_corrupt_cached_model_is_detected_and_rebuilt(tmp_path: Path, model_cache: Path) -> None:
    edgecam("models", "build", "efficientnet_lite0", check=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("efficientnet_lite0.onnx", "efficientnet_lite0.onnx.json"):
        shutil.copy(model_cache / name, cache / name)
    model = cache / "efficientnet_lite0.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # flip weights, keep the file loadable
    model.write_bytes(bytes(data))
    result = edgecam("run", "--headless", "--frames", "2", env={"EDGECAM_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert "rebuilding" in result.stderr
    assert model.read_bytes() == (model_cache / "efficientnet_lite0.onnx").read_bytes()


@pytest.mark.parametrize(("body", "words"), [
    ("frobnicate = 3\n", ["unknown key 'frobnicate'"]),
    ("topk = 'many'\n", ["key 'topk'", "integer"]),
    ("threads = 0\n", ["key 'threads'"]),
    ("backend = 'tensorflow'\n", ["key 'backend'", "onnx"]),
    ("headless = 'yes'\n", ["key 'headless'", "true or false"]),
    ("source = [\n", ["not valid TOML"]),
])
def test_bad_config_names_the_key(tmp_path: Path, body: str, words: list[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    assert_one_line_error(edgecam("run", "--config", str(config)), 2, str(config), *words)


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_line_error(edgecam("run", "--config", str(tmp_path / "no.toml")), 2, "no.toml")


@pytest.mark.parametrize("value", ["-1", "-3", "abc", "1.5", "1001"])  # 0: every label (--min-score)
def test_bad_topk(value: str) -> None:
    assert_one_line_error(edgecam("run", f"--topk={value}"), 2, "--topk")


def test_classify_refuses_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    assert_one_line_error(edgecam("classify", str(text)), 1, "notes.jpg")
    assert_one_line_error(edgecam("classify", str(tmp_path / "gone.png")), 1, "gone.png")


def test_a_bad_url_is_named_without_its_password() -> None:
    line = assert_one_line_error(edgecam("run", "--mqtt", "mqtt://bob:hunter2@broker:99999/x"), 2,
                                 "--mqtt", "bob:***@broker")
    assert "hunter2" not in line


def test_a_stop_signal_during_an_import_ends_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while onnxruntime initialises surfaces as its ImportError, caused by our stop."""
    from edgecam import cli
    from edgecam.commands import run
    from edgecam.runtime import signals

    def interrupted_import(args: object) -> int:
        try:
            raise signals.Stopped(0)
        except signals.Stopped as stop:
            raise ImportError("initialization failed", name="onnxruntime") from stop

    monkeypatch.setattr(run, "cmd_run", interrupted_import)
    assert cli.main(["run", "--frames", "1"]) == 0
