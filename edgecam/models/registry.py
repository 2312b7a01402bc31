"""The user models file of the cache (store.USER_MODELS): the models `edgecam train` wrote and
`edgecam models import` brought, each a ready ONNX file with its labels, by name. Reading them as
ModelSpecs is store.user_models(); this writes the file and reads its raw entries."""
from __future__ import annotations

import json
import re
import tomllib

from edgecam.base import atomic
from edgecam.models import store

# A user model's name: letters, digits, '_', '-' and '.' (it names files in the cache).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def entries() -> dict[str, dict]:
    """The raw entries of the user models file (paths relative to the cache); {} when it is missing."""
    try:
        with (store.cache_dir() / store.USER_MODELS).open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}


def register(name: str, entry: dict[str, object]) -> None:
    """Add or replace `name` in the user models file (written atomically)."""
    models = {**entries(), name: entry}
    lines = ["# Models trained with `edgecam train` or imported with `edgecam models import`.",
             "# Paths are relative to this folder.", ""]
    for model, fields in models.items():
        lines.append(f"[{json.dumps(model)}]")
        # JSON strings, numbers and lists of them are valid TOML values.
        lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        lines.append("")
    atomic.write_text(store.cache_dir() / store.USER_MODELS, "\n".join(lines))
    store.manifest.cache_clear()
