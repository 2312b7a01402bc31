"""One heavy step in a fresh process: the memory it takes (torch, jax and onnxruntime keep what
they allocated, and an import cannot be undone) is the operating system's again when it ends. A model
build on a small board needs that: the int8 build of a model whose fp32 file was built first peaked
at the sum of both steps in one process.

A fresh interpreter runs `python -c` with the step pickled on its stdin, and pickles its result or
its exception into a file: unlike multiprocessing's spawn, this does not depend on how the parent's
__main__ was started, and unlike fork it copies nothing of a parent that has threads running."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import TypeVar

from edgecam.base.errors import EdgecamError

T = TypeVar("T")

SERVE = "from edgecam.base.child import serve; serve()"


def call(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` in a new Python process, its result or its exception passed back.
    `function` must be importable by name (a module-level function) and `args` picklable. The
    result comes back as JSON (plain data, as a build's details are): unpickling it could import
    here what the child imported (torch's version string is a torch class)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    with tempfile.NamedTemporaryFile(prefix="edgecam-child-") as outcome:
        done = subprocess.run([sys.executable, "-c", SERVE, outcome.name],
                              input=pickle.dumps((function, args)), env=env, check=False)
        try:
            ok, value = pickle.load(outcome)
        except (EOFError, pickle.UnpicklingError):
            killed = ", killed: most likely out of memory" if done.returncode == -signal.SIGKILL else ""
            raise EdgecamError(f"{function.__module__}.{function.__qualname__} ended without a result "
                               f"(exit status {done.returncode}{killed})") from None
    if not ok:
        raise value
    return json.loads(value)


def passed_back(error: BaseException) -> BaseException:
    """`error` as the parent gets it: ours, a missing module and an interrupt as they are; anything
    else (its class may live in a module the parent must not import) as a RuntimeError."""
    if isinstance(error, (ImportError, KeyboardInterrupt)) or type(error).__module__.startswith("edgecam."):
        return error
    traceback.print_exception(error)  # unexpected: its traceback would be lost in the parent
    return RuntimeError(f"{type(error).__name__}: {error}")


def serve() -> None:
    """The child's side: run the pickled step from stdin, pickle the outcome into argv[1]."""
    function, args = pickle.loads(sys.stdin.buffer.read())
    try:
        outcome = (True, json.dumps(function(*args)))
    except BaseException as e:  # noqa: BLE001 - every outcome goes back to the parent
        outcome = (False, passed_back(e))
    with open(sys.argv[1], "wb") as f:
        pickle.dump(outcome, f)
