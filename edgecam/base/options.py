"""Options that are both a CLI flag and a TOML config key, declared once by the module that uses them.

Precedence: built-in default < config file (`--config`) < command-line flag. The resolved options
of a command are a frozen dataclass made from the declarations: one field per option."""
from __future__ import annotations

import argparse
import functools
import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_type_hints

from edgecam.base.errors import UsageError
from edgecam.base.redact import masked

Parser = Callable[[Any], Any]
N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Option:
    key: str  # config key; the flag is --key with '_' → '-'
    parse: Parser  # turns a flag string or a TOML value into the setting; raises ValueError(reason)
    default: Any
    help: str
    metavar: str | None = None
    switch: bool = False  # a flag without a value (store_true); a bool in TOML
    type: Any = None  # what the setting holds; None: what `parse` is annotated to return
    secret: bool = False  # a password or token: masked in the repr of the settings
    env: str | None = None  # an environment variable that, when set, replaces the default
    many: bool = False  # a flag that may be given several times: `parse` gets the list of values

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @functools.cached_property
    def value_type(self) -> Any:
        """The type of this option's setting: `type` if given, else bool for a switch, else the
        return annotation of `parse` (Any without one); a None default adds None."""
        if self.type is not None:
            return self.type
        kind = bool if self.switch else _returns(self.parse)
        return kind | None if self.default is None else kind


def _returns(parse: Parser) -> Any:
    try:
        return get_type_hints(parse).get("return", Any)
    except (NameError, TypeError):  # a name only imported for type checkers; not a function
        return Any


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(value: Any) -> int:
        # A TOML float counts only when whole (3.0, not 2.7, inf or nan); bool is an int subclass.
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be an integer")
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ValueError("must be an integer") from None
        return _within(number, minimum, maximum)

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            result = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
            raise ValueError("must be a number") from None
        if result != result:
            raise ValueError("must be a number")
        return _within(result, minimum, maximum)

    return parse


def _within(value: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and value < minimum:
        raise ValueError(f"must be ≥ {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be ≤ {maximum}")
    return value


def choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return value

    return parse


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


def optional(parse: Parser) -> Parser:
    """Accept the empty string (TOML) or None as 'not set'."""

    def parse_optional(value: Any) -> Any:
        return None if value in (None, "") else parse(value)

    parse_optional.__annotations__["return"] = _returns(parse) | None
    return parse_optional


class Settings:
    """The resolved options of one command (resolve() makes them): a frozen dataclass of
    settings_class(options), one field per option, named by its key and typed by its value_type.
    An option the command does not have is an AttributeError, never a silent default."""

    _secrets: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        shown = (f"{f.name}=***" if f.name in self._secrets and getattr(self, f.name) is not None
                 else f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({', '.join(shown)})"


def settings_class(options: Iterable[Option]) -> type[Settings]:
    """The class of the settings of `options`; equal option lists (the same keys, types and
    secrets in the same order) give the same class, so their settings compare equal."""
    return _settings_class(tuple((o.key, o.value_type, o.secret) for o in options))


@functools.cache
def _settings_class(spec: tuple[tuple[str, Any, bool], ...]) -> type[Settings]:
    made = make_dataclass("Settings", [(key, kind) for key, kind, _ in spec], bases=(Settings,),
                          namespace={"_secrets": frozenset(key for key, _, secret in spec if secret)},
                          frozen=True, repr=False)
    made.__module__ = __name__
    return made


def add_arguments(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    for option in options:
        if option.switch:
            parser.add_argument(
                option.flag, dest=option.key, action="store_true", default=argparse.SUPPRESS,
                help=option.help,
            )
        else:
            default = (", ".join(map(str, option.default)) if option.many and option.default
                       else option.default)
            parser.add_argument(
                option.flag, dest=option.key, default=argparse.SUPPRESS, metavar=option.metavar,
                action="append" if option.many else "store",
                help=f"{option.help} (default: {default})" if default is not None else option.help,
            )


# An edgecam config is a few lines; the cap keeps a wrong path (/dev/zero, a video) from eating memory.
MAX_CONFIG_BYTES = 1 << 20


def read_config(path: str | Path) -> dict[str, Any]:
    config = Path(path)
    try:
        with config.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"config file {config} does not exist: check the --config path") from None
    except OSError as e:
        raise UsageError(f"config file {config} cannot be read: {e.strerror or e}") from None
    except ValueError:  # a NUL byte in the path
        raise UsageError(f"config file {_show(str(path))} is not a valid path") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UsageError(f"config file {config} is larger than {MAX_CONFIG_BYTES >> 20} MiB: "
                         "not an edgecam config")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"config file {config} is not UTF-8 text (byte {e.start})") from None
    except ValueError as e:  # TOMLDecodeError, or int()'s digit limit that tomllib lets through
        raise UsageError(f"config file {config} is not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise UsageError(f"config file {config} is not valid TOML: arrays or tables nested too "
                         "deeply") from None


def resolve(
    options: Iterable[Option], flags: dict[str, Any], config: dict[str, Any] | None = None,
    config_name: str = "config",
) -> Settings:
    """Merge defaults, config values and flags, validating each with its option's parser, into
    the settings of `options`."""
    options = list(options)
    known = {o.key: o for o in options}
    values = {o.key: o.default for o in options}
    for option in options:
        if option.env and os.environ.get(option.env):
            values[option.key] = _parse(option, os.environ[option.env], f"environment variable {option.env}")
    for key, value in (config or {}).items():
        option = known.get(key)
        if option is None:
            raise UsageError(
                f"{config_name}: unknown key {_show(key)} (known keys: {', '.join(sorted(known))})"
            )
        values[key] = _parse(option, value, f"{config_name}: key '{key}'")
    for key, value in flags.items():
        if key in known:
            values[key] = True if known[key].switch else _parse(known[key], value, known[key].flag)
    return settings_class(options)(**values)


def select(options: Iterable[Option], settings: Settings | None = None) -> Settings:
    """The settings of `options` taken from `settings`, those of a command that has some or all
    of these options among its own; an option `settings` lacks (or all, without it) has its
    default."""
    options = list(options)
    given = {f.name for f in fields(settings)} if settings is not None else set()
    return settings_class(options)(**{o.key: getattr(settings, o.key) if o.key in given
                                      else o.default for o in options})


def _parse(option: Option, value: Any, where: str) -> Any:
    if option.switch:
        value_parser: Parser = boolean
    else:
        value_parser = option.parse
    try:
        return value_parser(value)
    except ValueError as e:
        raise UsageError(f"{where} {e}, got {_show(value)}") from None


def _show(value: Any, limit: int = 60) -> str:
    """repr() cut to `limit` characters, passwords in URLs masked: an error line names a bad
    value, it does not dump it (nor a secret into the journal)."""
    shown = masked(repr(value))
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."
