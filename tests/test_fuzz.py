"""Bad-input suite: thousands of hypothesis-made inputs for the URI parser, the config loader, the
image loader and the CLI. Whatever a user types or points edgecam at, it either works or fails with
an EdgecamError whose message is one line: never another exception type, never a traceback.

Derandomized, so CI runs the same inputs every time and a failure reproduces;
`--hypothesis-show-statistics` prints how many inputs each test ran."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import edgecam, needs, photo

try:  # the [dev] extra; every test here is made of its inputs
    from hypothesis import HealthCheck, example, given, settings
    from hypothesis import strategies as st
except ImportError:
    needs("the Python module hypothesis", "hypothesis", pip=True)

from edgecam import cli
from edgecam.base import options
from edgecam.base.errors import EdgecamError
from edgecam.base.imageio import read_rgb
from edgecam.runtime.pipeline import run_options
from edgecam.sources import open_source
from edgecam.sources.base import Source

pytestmark = pytest.mark.fuzz


def fuzz(examples: int) -> settings:
    """No deadline: a test must not depend on timing (and the machine is shared)."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


@contextlib.contextmanager
def clean_failure() -> Iterator[None]:
    """Let the block succeed, or fail only with a one-line EdgecamError."""
    try:
        yield
    except EdgecamError as e:
        line = str(e)
        assert line.strip() and "\n" not in line and "\r" not in line, repr(line)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with a real photo, a text file posing as one, folders and configs, so
    fuzzed names often hit something that exists."""
    root = tmp_path_factory.mktemp("fuzz-cwd")
    cv2.imwrite(str(root / "cat.png"), cv2.cvtColor(photo("chelsea")[::4, ::4], cv2.COLOR_RGB2BGR))
    (root / "notes.jpg").write_text("not a picture")
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    (root / "frames").mkdir()
    cv2.imwrite(str(root / "frames" / "0.png"), np.full((40, 60, 3), 128, np.uint8))
    (root / "empty").mkdir()
    (root / "good.toml").write_text("topk = 3\nheadless = true\n")
    (root / "bad.toml").write_text("topk = [\n")
    (root / "labels.txt").write_text("a\nb\n")
    (root / "fake.onnx").write_bytes(b"\x08\x07garbage" * 20)
    return root


EXISTING = ["cat.png", "notes.jpg", "clip.mp4", "frames", "frames/", "frames/0.png", "empty",
            "good.toml", "bad.toml", "labels.txt", "fake.onnx", ".", "..", "/", "/dev/null"]

# --- the URI parser ---------------------------------------------------------------------------

URI_PREFIXES = ["demo", "demo:", "file://", "file:///", "rtsp://", "rtsps://", "http://", "https://",
                "usb:", "usb://", "picam:", "picam://", "csi://", "v4l2://", "v4l2:///dev/video",
                "/dev/video", "udp://", "ftp://", "./", "../", "~/", "C:\\", "//"]
uris = st.one_of(
    st.text(),
    st.builds(lambda a, b: a + b, st.sampled_from(URI_PREFIXES + EXISTING), st.text(max_size=30)),
    st.sampled_from(URI_PREFIXES + EXISTING),
    st.builds(lambda n, c: c * n, st.integers(200, 5000), st.sampled_from(["a", "/", "a/"])),
)


@fuzz(4000)
@given(uri=uris, with_settings=st.booleans(), input_size=st.sampled_from([None, 224, 1, 4096]))
@example(uri="x" * 256, with_settings=True, input_size=224)  # a name longer than NAME_MAX
@example(uri="a/" * 2100, with_settings=True, input_size=224)  # a path longer than PATH_MAX
def test_uri_parser_only_constructs(playground: Path, monkeypatch: pytest.MonkeyPatch, uri: str,
                                    with_settings: bool, input_size: int | None) -> None:
    """open_source names a source without opening it: no thread, no file descriptor, no device."""
    monkeypatch.chdir(playground)
    run_settings = options.resolve(run_options(), {}) if with_settings else None
    threads, fds = threading.active_count(), open_fds()
    with clean_failure():
        source = open_source(uri, run_settings, input_size)
        assert isinstance(source, Source), type(source)
    assert threading.active_count() == threads and open_fds() == fds, f"{uri!r} opened something"


# --- the config loader ------------------------------------------------------------------------

KEYS = sorted(o.key for o in run_options())
TOML_TOKENS = [*KEYS, "=", " = ", "\n", "[", "]", "[[", "]]", "{", "}", ",", ".", "'", '"', '"""',
               "'''", "#", "\\", "\\u00e9", "\\x", "0", "-1", "1_000", "0x1F", "1e400", "inf",
               "-inf", "nan", "true", "false", "1979-05-27T07:32:00Z", "07:32:00",
               "1979-05-27", "9" * 5000, "é", "\u2028", "\x00", "\t", " "]
toml_ish = st.lists(st.sampled_from(TOML_TOKENS) | st.text(max_size=8), max_size=60).map("".join)
config_bytes = st.one_of(
    st.binary(max_size=2000),
    toml_ish.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(lambda n, opener: ("source = " + opener * n).encode(), st.integers(1, 3000),
              st.sampled_from(["[", "{a = ", "[{b = "])),
)


@fuzz(2500)
@given(data=config_bytes)
@example(data=b"topk = " + b"9" * 5000)
@example(data=b"source = " + b"[" * 3000)
@example(data=b"#" * (options.MAX_CONFIG_BYTES + 1))
def test_config_file_of_any_bytes(tmp_path: Path, data: bytes) -> None:
    """read_config on any file content, then resolve what it gives against the real run options."""
    path = tmp_path / "edgecam.toml"
    path.write_bytes(data)
    with clean_failure():
        config = options.read_config(path)
        options.resolve(run_options(), {}, config, config_name=f"config {path}")


# The parsers care about a value's type and range, so one of each TOML date/time kind is enough.
TOML_TIMES = [dt.datetime(1979, 5, 27, 7, 32), dt.datetime(1979, 5, 27, 7, 32, tzinfo=dt.UTC),
              dt.date(1979, 5, 27), dt.time(7, 32)]
toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from([*TOML_TIMES, float("inf"), -float("inf"), float("nan"), 2.5, 10 ** 400,
                       -10 ** 400, "", "0", "1", "-1", "nan", "inf", "demo", "onnx", "1e999"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=4,
)
flag_values = st.text(max_size=20) | st.sampled_from(["0", "1", "-1", "3.0", "1e999", "nan", ""])


@fuzz(2000)
@given(config=st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=1)  # one key: dense
       | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=12), toml_values, max_size=4),
       flags=st.dictionaries(st.sampled_from(KEYS), flag_values, max_size=3))
def test_resolve_any_config_and_flags(config: dict[str, Any], flags: dict[str, str]) -> None:
    opts = run_options()
    switches = {o.key for o in opts if o.switch}
    flags = {k: True if k in switches else v for k, v in flags.items()}  # argparse: True or a str
    with clean_failure():
        resolved = options.resolve(opts, flags, config)
        assert {f.name for f in dataclasses.fields(resolved)} == {o.key for o in opts}


# --- the image loader -------------------------------------------------------------------------

MAGIC = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
         b"II*\x00", b"MM\x00*", b"P6\n", b"P5\n", b"P6\n64 48\n255\n", b"GIF89a", b"\x00\x00\x00\x0cjP"]


@fuzz(1500)
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=3000),
       suffix=st.sampled_from([".jpg", ".png", ".bmp", ".webp", ".tiff", ".ppm", ""]))
def test_image_of_any_bytes(tmp_path: Path, magic: bytes, body: bytes, suffix: str) -> None:
    path = tmp_path / f"image{suffix}"
    path.write_bytes(magic + body)
    with clean_failure():
        image = read_rgb(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@pytest.fixture(scope="module")
def real_images() -> dict[str, bytes]:
    """A real photo, small (so a corrupted size field stays cheap), in each format read_rgb names."""
    bgr = cv2.cvtColor(photo("chelsea")[::5, ::5], cv2.COLOR_RGB2BGR)
    encoded = {}
    for suffix in (".jpg", ".png", ".bmp", ".webp", ".tiff"):
        ok, data = cv2.imencode(suffix, bgr)
        assert ok, suffix
        encoded[suffix] = data.tobytes()
    ok, progressive = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    encoded[".progressive.jpg"] = progressive.tobytes()
    return encoded


@fuzz(2000)
@given(data=st.data())
def test_truncated_and_corrupted_real_images(tmp_path: Path, real_images: dict[str, bytes],
                                             data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(real_images)), label="format")
    image = bytearray(real_images[name])
    for offset, value in data.draw(st.lists(st.tuples(st.integers(0, len(image) - 1),
                                                      st.integers(0, 255)), max_size=8),
                                   label="byte changes"):
        image[offset] = value
    cut = data.draw(st.integers(0, len(image)), label="truncate at")
    path = tmp_path / f"photo{Path(name).suffix}"
    path.write_bytes(bytes(image[:cut]))
    with clean_failure():
        decoded = read_rgb(path)
        assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3


# --- the CLI, end to end, in-process ----------------------------------------------------------

@pytest.fixture(scope="module")
def built_model() -> None:
    """A valid argv classifies for real: build Lite0 once, before the examples."""
    edgecam("models", "build", "efficientnet_lite0", check=True)


# Commands that only read, classify or compute. Not fuzzed: those that change the machine or run
# for long by design (service install, train, capture, bench, models pull).
COMMANDS = [["run"], ["classify"], ["eval"], ["report"], ["models", "list"], ["models", "info"],
            ["models", "build"], ["models", "compare-conv"], ["models"], [], ["frobnicate"]]


@functools.cache
def flags_of(command: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The switches and the flags that take a value of a subcommand, from argparse's own tables
    (without -h/--version, which only print and exit)."""
    parser = cli.parser()
    for name in command:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers or name not in subparsers[0].choices:
            break
        parser = subparsers[0].choices[name]
    switches = {flag for a in parser._actions if a.nargs == 0 for flag in a.option_strings}
    valued = {flag for a in parser._actions if a.nargs != 0 for flag in a.option_strings}
    return sorted(switches - {"-h", "--help", "--version"}), sorted(valued)


# Only local inputs that stay in the working directory: a network or camera URI that parses would
# be dialled for real, and a run writes logs and snapshots wherever it is told.
CLI_VALUES = ([e for e in EXISTING if e not in ("/", "..")]
              + ["demo", "missing.png", "0", "1", "2", "-1", "3.0", "1e999", "nan", "", "=", "onnx",
                 "torchscript?", "efficientnet_lite9", "ftp://x/y", "debug", "out.jsonl", "out.csv"])


@fuzz(300)
@given(data=st.data())
def test_cli_never_shows_a_traceback(built_model: None, playground: Path,
                                     monkeypatch: pytest.MonkeyPatch, data: st.DataObject) -> None:
    """Whole argv lists through edgecam.cli.main: it returns an exit code or argparse exits (2 for
    a usage error); nothing else escapes, stderr has no traceback and at most one error line.
    A run gets `--frames 1` last so a valid one ends (a later flag wins in argparse)."""
    monkeypatch.chdir(playground)
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    command = data.draw(st.sampled_from(COMMANDS), label="command")
    switches, valued = flags_of(tuple(command))
    values = st.sampled_from(CLI_VALUES) | st.text(alphabet=st.characters(
        blacklist_characters="/\x00"), max_size=12)
    # Flags with values and switches, plus at most one loose token anywhere: many argv lists parse
    # and reach validation or a real run, and the rest exercise argparse's own errors.
    pieces = ([st.tuples(st.sampled_from(valued), values).map(list)] if valued else []) \
        + ([st.sampled_from(switches).map(lambda name: [name])] if switches else [])
    drawn = data.draw(st.lists(st.one_of(pieces), max_size=5), label="arguments") if pieces else []
    arguments = [token for piece in drawn for token in piece]
    loose = data.draw(st.lists(values | st.sampled_from(CLI_VALUES + valued + switches),
                               max_size=1), label="loose token")
    at = data.draw(st.integers(0, len(arguments)), label="at")
    argv = command + arguments[:at] + loose + arguments[at:]
    if command == ["run"]:
        argv += ["--frames", "1"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
    assert code is None or isinstance(code, int), (argv, code, stderr.getvalue())
    assert "Traceback" not in stderr.getvalue(), (argv, stderr.getvalue())
    errors = [line for line in stderr.getvalue().splitlines() if line.startswith("edgecam: error:")]
    assert len(errors) <= 1, (argv, stderr.getvalue())


