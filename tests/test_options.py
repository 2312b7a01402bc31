"""The settings resolve() makes: a frozen dataclass generated from the option declarations, one
typed field per option, and defaults < config < flags."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest

from edgecam import sinks, sources, training
from edgecam.base import options
from edgecam.base.errors import UsageError
from edgecam.commands.capture import capture_options
from edgecam.commands.classify import classify_options
from edgecam.commands.eval import eval_options
from edgecam.runtime.pipeline import run_options
from edgecam.sinks.mqtt import BrokerUrl

SAMPLE = [
    options.Option("name", options.text, "cat", "a name"),
    options.Option("count", options.integer(1), 3, "a count"),
    options.Option("ratio", options.number(0.0, 1.0), 0.5, "a ratio"),
    options.Option("limit", options.optional(options.integer(1)), None, "a limit"),
    options.Option("mode", options.choice("fast", "slow"), "fast", "a mode"),
    options.Option("quiet", options.boolean, False, "a switch", switch=True),
    options.Option("pair", tuple, (1, 2), "a pair", type=tuple[int, int]),
    options.Option("token", options.optional(options.text), None, "a secret", secret=True),
]

COMMANDS = {"run": run_options, "capture": capture_options, "classify": classify_options,
            "eval": eval_options, "train": lambda: training.OPTIONS}


def test_one_typed_field_per_option_in_order() -> None:
    settings = options.resolve(SAMPLE, {})
    assert isinstance(settings, options.Settings) and dataclasses.is_dataclass(settings)
    assert {f.name: f.type for f in dataclasses.fields(settings)} == {
        "name": str, "count": int, "ratio": float, "limit": int | None, "mode": str,
        "quiet": bool, "pair": tuple[int, int], "token": str | None}
    assert dataclasses.asdict(settings) == {o.key: o.default for o in SAMPLE}


def conforms(value: Any, kind: Any) -> bool:
    """Whether `value` is of the (possibly generic or union) type `kind`."""
    if kind is Any:
        return True
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return any(conforms(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    origin = typing.get_origin(kind)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[T, ...]
            return isinstance(value, tuple) and all(conforms(v, args[0]) for v in value)
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(conforms(v, k) for v, k in zip(value, args, strict=True)))
    return isinstance(value, origin or kind)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_types_are_honest(command: str) -> None:
    """Each option says what its setting holds: the default conforms, and so do values parsed from
    a config; only an option whose parser says nothing is Any."""
    opts = COMMANDS[command]()
    settings = options.resolve(opts, {})
    for field in dataclasses.fields(settings):
        assert field.type is not Any, f"{field.name}: give its Option a type"
        assert conforms(getattr(settings, field.name), field.type), field.name


def test_parsed_values_conform_to_their_types() -> None:
    config = {"camera_size": "640x480", "preview": 8080, "log_max_bytes": "1M", "frames": 3,
              "duration": 2, "mqtt": "mqtt://user:pw@broker/cam", "snapshot_keep": ""}
    settings = options.resolve(run_options(), {}, config)
    kinds = {f.name: f.type for f in dataclasses.fields(settings)}
    for key in config:
        assert conforms(getattr(settings, key), kinds[key]), key
    assert isinstance(settings.mqtt, BrokerUrl) and settings.snapshot_keep is None


def test_settings_are_immutable() -> None:
    settings = options.resolve(SAMPLE, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.count = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        settings.new = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        del settings.name
    assert settings.count == 3


def test_an_undeclared_setting_is_an_attribute_error() -> None:
    """A sink asking for an option its command does not have fails, it gets no silent default."""
    classify = options.resolve(classify_options(), {})
    assert classify.topk == 5
    with pytest.raises(AttributeError, match="log"):
        classify.log  # noqa: B018
    with pytest.raises(AttributeError, match="topk"):
        options.resolve(eval_options(), {}).topk  # noqa: B018


def test_defaults_then_config_then_flags() -> None:
    config = {"name": "dog", "count": 7, "quiet": False, "limit": 9}
    flags = {"count": "8", "quiet": True, "other": "not an option of these"}
    assert options.resolve(SAMPLE, {}).count == 3
    from_config = options.resolve(SAMPLE, {}, config)
    assert (from_config.name, from_config.count, from_config.quiet, from_config.limit) == (
        "dog", 7, False, 9)
    both = options.resolve(SAMPLE, flags, config)
    assert (both.name, both.count, both.quiet, both.limit, both.mode) == ("dog", 8, True, 9, "fast")
    with pytest.raises(UsageError, match="--count must be ≥ 1, got '0'"):
        options.resolve(SAMPLE, {"count": "0"}, config)


def test_equal_option_lists_give_one_class_and_equal_settings() -> None:
    """capture_options() declares new Option objects at each call: the same settings class."""
    first, second = options.resolve(capture_options(), {}), options.resolve(capture_options(), {})
    assert type(first) is type(second) and first == second and hash(first) == hash(second)
    assert options.settings_class(capture_options()) is type(first)
    assert options.resolve(capture_options(), {"count": "2"}) != first
    assert type(options.resolve(eval_options(), {})) is not type(first)
    assert dataclasses.replace(first, count=2) == options.resolve(capture_options(), {"count": "2"})


def test_repr_is_readable_and_masks_secrets() -> None:
    settings = options.resolve(SAMPLE, {"token": "hunter2"})
    assert repr(settings) == ("Settings(name='cat', count=3, ratio=0.5, limit=None, mode='fast', "
                              "quiet=False, pair=(1, 2), token=***)")
    assert "token=None" in repr(options.resolve(SAMPLE, {}))
    run = repr(options.resolve(run_options(), {"mqtt": "mqtt://user:hunter2@broker/cam",
                                               "preview_token": "hunter3"}))
    assert "hunter" not in run and "mqtt=***" in run and "preview_token=***" in run


def test_select_takes_the_known_settings_and_defaults_the_rest() -> None:
    """What open_source does with the settings of its caller's options."""
    capture = options.resolve(capture_options(), {"rotation": "90", "loop": True, "count": "2"})
    picked = options.select(sources.OPTIONS, capture)
    assert type(picked) is options.settings_class(sources.OPTIONS)
    assert (picked.rotation, picked.loop, picked.fourcc) == (90, True, "MJPG")
    with pytest.raises(AttributeError):
        picked.count  # noqa: B018
    assert options.select(sources.OPTIONS, options.resolve(classify_options(), {})) \
        == options.select(sources.OPTIONS) == options.resolve(sources.OPTIONS, {})
    assert options.select(sinks.OPTIONS, options.resolve(run_options(), {"log": "x.csv"})).log \
        == "x.csv"
