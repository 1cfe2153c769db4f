"""Configuration: dataclass defaults -> recipe TOML (--config) -> CLI options -> --set k=v.

A recipe is a flat TOML file whose keys are the fields of a task's `Config` dataclass;
an optional `[seqkit]` table (written into every model directory) names the task, so
`--config MODEL_DIR/config.toml` re-runs a training with the same settings.

    seqkit sentiment train data/sentiment_en.tsv -o model --config tasks/sentiment.toml --set units=64
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from seqkit.errors import ConfigError

META_TABLE = "seqkit"


def field_names(config_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    """Return `value` converted to the type of `default`, or raise ConfigError."""
    expected = type(default)
    if default is None or isinstance(value, expected) and not (
        isinstance(value, bool) and expected is not bool
    ):
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            if expected is bool:
                lowered = text.lower()
                if lowered in ("true", "1", "yes", "on"):
                    return True
                if lowered in ("false", "0", "no", "off"):
                    return False
                raise ValueError
            if expected is int:
                return int(text)
            if expected is float:
                return float(text)
            if expected in (list, tuple):
                return expected(json.loads(text))
        except ValueError:
            pass
    raise ConfigError(
        f"{name} must be {expected.__name__}, got {value!r}", path=source
    )


def _check_known(keys: Iterable[str], config_cls, source: str) -> None:
    known = field_names(config_cls)
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known keys: {', '.join(known)}",
            path=source,
        )


def read_recipe(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Read a recipe TOML; a `[seqkit]` table naming another task is an error."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("no such recipe file", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None
    meta = data.pop(META_TABLE, {})
    if task and meta.get("task") not in (None, task):
        raise ConfigError(
            f"recipe is for task {meta.get('task')!r}, not {task!r}", path=str(path)
        )
    return data


def parse_set_items(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def resolve(
    config_cls,
    recipe: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    set_items: Iterable[str] = (),
    task: str | None = None,
):
    """Build a `config_cls` instance from its defaults and the layers above them.

    `options` holds CLI options; entries whose value is None were not given and are skipped.
    """
    defaults = config_cls()
    values = dataclasses.asdict(defaults)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if recipe is not None:
        layers.append((str(recipe), read_recipe(recipe, task)))
    if options:
        layers.append(("command line", {k: v for k, v in options.items() if v is not None}))
    overrides = parse_set_items(set_items)
    if overrides:
        layers.append(("--set", overrides))
    for source, layer in layers:
        _check_known(layer.keys(), config_cls, source)
        for key, value in layer.items():
            values[key] = _coerce(key, value, getattr(defaults, key), source)
    config = config_cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def from_dict(config_cls, data: Mapping[str, Any], source: str):
    """Rebuild a saved config, checking keys and types the same way as a recipe."""
    _check_known(data.keys(), config_cls, source)
    defaults = config_cls()
    values = dataclasses.asdict(defaults)
    for key, value in data.items():
        values[key] = _coerce(key, value, getattr(defaults, key), source)
    return config_cls(**values)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(config, task: str, version: str) -> str:
    """Write a resolved config as TOML that `resolve(recipe=...)` reads back."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(config).items()
             if v is not None]
    lines += ["", f"[{META_TABLE}]", f"task = {_toml_value(task)}",
              f"version = {_toml_value(version)}"]
    return "\n".join(lines) + "\n"


def check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_range(name: str, value: float, low: float | None = None, high: float | None = None):
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ConfigError(f"{name} must be in {bounds}, got {value!r}")
