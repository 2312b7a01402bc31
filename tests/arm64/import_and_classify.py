"""Run under the emulated aarch64 Python by tests/test_arm64.py: into the empty model cache CACHE,
`edgecam models import PACKAGE`, then `edgecam classify --json --backend B IMAGE...` for each
backend B, in one process (the emulator starts once). Prints one JSON object: backend → results,
and the heavy modules that were imported (none may be).

    import_and_classify.py CACHE PACKAGE B,B,... IMAGE...
"""
import contextlib
import io
import json
import os
import sys

cache, package, backends, *images = sys.argv[1:]
os.environ["EDGECAM_CACHE"] = cache

from edgecam import cli  # noqa: E402 - after EDGECAM_CACHE is set

if cli.main(["models", "import", package]) != 0:
    sys.exit("edgecam models import failed")
results = {}
for backend in backends.split(","):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["classify", "--json", "--backend", backend, *images])
    if status != 0:
        sys.exit(f"edgecam classify --backend {backend} failed")
    results[backend] = json.loads(out.getvalue())
print(json.dumps({"results": results, "heavy": [m for m in ("torch", "onnx") if m in sys.modules]}))
