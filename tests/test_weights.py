"""`edgecam models pull`: the downloader against a real HTTP server on loopback serving a generated
checkpoint (good file, cut-off transfer then resume, wrong hash, server gone, no published digest),
and local files (torch checkpoints and safetensors, good and bad). The Keras and timm formats have
their own tests (test_convert_keras, test_convert_timm)."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
import torch
from conftest import edgecam

from edgecam.base.errors import EdgecamError, ModelError
from edgecam.models import build, store, weights


class Server:
    """Serves one file with HTTP Range support; `cut` makes the next response stop after N bytes
    (a dropped connection), with the full Content-Length announced."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.cut: int | None = None
        self.ranges: list[str | None] = []
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/mobilenet_v3_small-test.pth"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requested = self.headers.get("Range")
                server.ranges.append(requested)
                start = int(requested.removeprefix("bytes=").rstrip("-")) if requested else 0
                body = server.payload[start:]
                self.send_response(206 if requested else 200)
                if requested:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut is not None:
                    body, server.cut = body[:server.cut], None
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def checkpoint(tmp_path: Path) -> bytes:
    """A real checkpoint of mobilenet_v3_small (seeded random weights), as bytes."""
    spec = store.get("mobilenet_v3_small")
    path = tmp_path / "generated.pth"
    torch.save(build.untrained(spec).state_dict(), path)
    return path.read_bytes()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store of its own: pulled test weights must not reach the session's models."""
    monkeypatch.setenv("EDGECAM_CACHE", str(tmp_path / "store"))
    return tmp_path / "store"


def _spec(url: str, payload: bytes, digits: int = 64) -> store.ModelSpec:
    return dataclasses.replace(store.get("mobilenet_v3_small"), weights=url,
                               weights_sha256=hashlib.sha256(payload).hexdigest()[:digits])


def test_pull_downloads_verifies_and_stores_the_checkpoint(checkpoint: bytes, cache: Path) -> None:
    with Server(checkpoint) as server:
        spec = _spec(server.url, checkpoint, digits=8)  # torchvision publishes an 8-digit prefix
        assert store.weights_id(spec) is None
        path = weights.pull(spec)
    assert path.read_bytes() == checkpoint
    assert store.weights_id(spec) == hashlib.sha256(checkpoint).hexdigest()
    assert store.weights_file(spec) == path
    assert not list(path.parent.glob("*.part"))


def test_a_cut_download_resumes_with_a_range_request(checkpoint: bytes, cache: Path) -> None:
    with Server(checkpoint) as server:
        spec = _spec(server.url, checkpoint)
        server.cut = len(checkpoint) // 3
        with pytest.raises(EdgecamError, match=r"stopped at .* run the pull again to resume"):
            weights.pull(spec)
        path = weights.pull(spec)
        assert server.ranges == [None, f"bytes={len(checkpoint) // 3}-"]
    assert path.read_bytes() == checkpoint


def test_a_wrong_hash_is_refused_and_nothing_is_stored(checkpoint: bytes, cache: Path) -> None:
    with Server(checkpoint) as server:
        spec = dataclasses.replace(_spec(server.url, checkpoint), weights_sha256="0" * 64)
        with pytest.raises(EdgecamError, match="not the published one") as error:
            weights.pull(spec)
    assert "\n" not in str(error.value)
    assert store.weights_id(spec) is None
    assert not any(p.is_file() for p in store.weights_dir().iterdir())


def test_a_server_that_is_gone_gives_one_clear_line(checkpoint: bytes, cache: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = _spec(f"http://127.0.0.1:{port}/gone.pth", checkpoint)
    with pytest.raises(EdgecamError, match=r"cannot reach 127\.0\.0\.1:\d+ .* --weights FILE"):
        weights.pull(spec)


def test_a_local_checkpoint_that_does_not_fit_is_refused(tmp_path: Path, cache: Path) -> None:
    spec = store.get("mobilenet_v3_small")
    other = tmp_path / "other.pth"
    torch.save(build.untrained(store.get("squeezenet1_1")).state_dict(), other)
    with pytest.raises(ModelError, match="do not fit network mobilenet_v3_small"):
        weights.pull(spec, other)
    assert store.weights_id(spec) is None


def test_cli_runs_a_pulled_local_checkpoint_and_refuses_untrained(checkpoint: bytes, cache: Path,
                                                                  tmp_path: Path,
                                                                  photo_files: dict[str, Path]) -> None:
    image = str(photo_files["chelsea"])
    refused = edgecam("classify", "--model", "squeezenet1_1", image)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0
    assert "edgecam models pull squeezenet1_1" in refused.stderr and "--allow-untrained" in refused.stderr

    local = tmp_path / "mine.pth"
    local.write_bytes(checkpoint)
    edgecam("models", "pull", "mobilenet_v3_small", "--weights", str(local), check=True)
    assert store.weights_id(store.get("mobilenet_v3_small")) == hashlib.sha256(checkpoint).hexdigest()
    edgecam("classify", "--model", "mobilenet_v3_small", image, check=True)


def safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """`state` in the safetensors format, written by hand from its specification: an 8-byte
    little-endian header length, the JSON header (dtype, shape, data offsets), the raw data."""
    header, data = {}, b""
    for name, tensor in state.items():
        raw = tensor.contiguous().numpy().tobytes()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[tensor.dtype]
        header[name] = {"dtype": dtype, "shape": list(tensor.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.fixture
def safetensors_file(tmp_path: Path) -> Path:
    """A checkpoint of mobilenet_v3_small (torchvision's names) as a safetensors file."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(build.untrained(store.get("mobilenet_v3_small")).state_dict()))
    return path


def _refused(spec: store.ModelSpec, path: Path) -> str:
    with pytest.raises(ModelError) as error:
        weights.pull(spec, path)
    assert store.weights_id(spec) is None
    assert not store.weights_dir().exists() or not any(store.weights_dir().iterdir())
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_safetensors_file_is_read_and_stored(safetensors_file: Path, cache: Path) -> None:
    spec = store.get("mobilenet_v3_small")
    path = weights.pull(spec, safetensors_file)
    expected = build.untrained(spec).state_dict()
    assert all(torch.equal(expected[k], v) for k, v in torch.load(path, weights_only=True).items())


def test_a_safetensors_header_claiming_more_than_the_file_is_refused(safetensors_file: Path,
                                                                     cache: Path) -> None:
    data = bytearray(safetensors_file.read_bytes())
    data[:8] = (len(data) * 2).to_bytes(8, "little")
    safetensors_file.write_bytes(data)
    message = _refused(store.get("mobilenet_v3_small"), safetensors_file)
    assert f"its header claims {len(data) * 2} bytes but the file has {len(data)}" in message


def test_a_truncated_safetensors_file_is_refused(safetensors_file: Path, cache: Path) -> None:
    data = safetensors_file.read_bytes()
    safetensors_file.write_bytes(data[: len(data) - 1000])
    message = _refused(store.get("mobilenet_v3_small"), safetensors_file)
    assert f"but the file has {len(data) - 1000}" in message and "ends at byte" in message


def test_a_file_of_another_network_is_refused(safetensors_file: Path, cache: Path) -> None:
    message = _refused(store.get("squeezenet1_1"), safetensors_file)
    assert message.startswith(f"weights {safetensors_file} do not fit network squeezenet1_1: ")


def test_without_a_published_digest_the_first_download_is_trusted_then_checked(
        checkpoint: bytes, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    """Keras and the Hugging Face hub publish no digest: the first pull records the file's, a later
    pull of another file from the same URL is refused, and `models info` says which check it had."""
    from edgecam.commands.models import weights_source

    with Server(checkpoint) as server:
        spec = dataclasses.replace(_spec(server.url, checkpoint), weights_sha256=None)
        assert "first download's is recorded" in weights_source(spec)["checked"]
        weights.pull(spec)
        first = store.installed_weights(spec)
        assert first["checked"] == "first download"
        assert "recorded at its first download" in weights_source(spec)["checked"]
        other = tmp_path / "other.pth"
        torch.save({k: v + 1 if v.is_floating_point() else v
                    for k, v in build.untrained(spec).state_dict().items()}, other)
        server.payload = other.read_bytes()
        with pytest.raises(EdgecamError, match="not the one first downloaded from there"):
            weights.pull(spec)
    assert store.installed_weights(spec) == first
