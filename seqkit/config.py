"""Configuration: dataclass defaults -> recipe TOML (--config) -> CLI options -> --set k=v.

A recipe is a flat TOML file whose keys are the fields of a task's `Config` dataclass;
an optional `[seqkit]` table (written into every model directory) names the task, so
`--config MODEL_DIR/config.toml` re-runs a training with the same settings.

A task whose best defaults depend on its data declares them as variants (lm: one set for
characters, one for words, `Config.VARIANTS`); once the data is read, `settle` gives each
key that no layer set the variant's value, and a recipe's `[variant]` table (`[char]`)
overrides that variant's values, below the command line:

    dataclass < Config.VARIANTS[v] < recipe < recipe's [v] table < options < --set

    seqkit sentiment train data/sentiment_en.tsv -o model --config tasks/sentiment.toml \
        --set units=64

The keys every task shares are declared once here (Recurrent, Stack, Training); a task's
Config inherits them and redeclares only a default it changes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from seqkit import choices
from seqkit.errors import ConfigError

META_TABLE = "seqkit"


def field_names(config_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls)]


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    """Return `value` converted to the type of `default`, or raise ConfigError. A float
    must be finite: nan passes every range check (its comparisons are all false)."""
    converted = _convert(name, value, default, source)
    if isinstance(converted, float) and not math.isfinite(converted):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", path=source)
    return converted


def _convert(name: str, value: Any, default: Any, source: str) -> Any:
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
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid TOML: bytes {exc.object[exc.start:exc.start + 4]!r} "
                          "are not UTF-8", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the recipe: {exc.strerror}", path=str(path)) from None
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
    tables: dict[str, dict[str, Any]] = {}
    if recipe is not None:
        layer = read_recipe(recipe, task)
        for name in getattr(config_cls, "VARIANTS", {}):
            if isinstance(layer.get(name), dict):
                table, source = layer.pop(name), f"{recipe} [{name}]"
                _check_known(table.keys(), config_cls, source)
                tables[name] = {key: _coerce(key, value, getattr(defaults, key), source)
                                for key, value in table.items()}
        layers.append((str(recipe), layer))
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
    config.__dict__[_GIVEN] = _Given(
        str(recipe) if recipe is not None else None,
        frozenset(layers[0][1]) if recipe is not None else frozenset(),
        frozenset(k for source, layer in layers[recipe is not None:] for k in layer), tables)
    return config


class _Given(NamedTuple):
    """What settle needs of a resolved config: which keys the recipe set, which the command
    line set, and the recipe's variant tables."""
    recipe: str | None
    recipe_keys: frozenset
    command_line_keys: frozenset
    tables: dict


_GIVEN = "_given"


def settle(config, variant: str, **fixed):
    """`config` for `variant` (a key of its class's VARIANTS), once the data has said which:
    each key that neither the recipe nor the command line set takes the variant's value,
    and the recipe's `[variant]` table overrides the recipe's other keys. `fixed` is set
    as given. A config built in code rather than by `resolve` keeps its values."""
    given = config.__dict__.get(_GIVEN)
    values = dataclasses.asdict(config)
    if given is not None:
        set_keys = given.recipe_keys | given.command_line_keys
        for key, value in getattr(type(config), "VARIANTS", {}).get(variant, {}).items():
            if key not in set_keys:
                values[key] = value
        for key, value in given.tables.get(variant, {}).items():
            if key not in given.command_line_keys:
                values[key] = value
    values.update(fixed)
    settled = type(config)(**values)
    try:
        settled.validate()
    except ConfigError as exc:  # a value of the recipe's table, checked only now
        if exc.path is None and given is not None and variant in given.tables:
            exc.path = f"{given.recipe} [{variant}]"
        raise
    return settled


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


class _Validated:
    """Each shared part checks its own keys, then hands on to the next part in the MRO."""

    def validate(self) -> None:
        pass


@dataclasses.dataclass
class Recurrent(_Validated):
    """The recurrent layers (backbones.py builds them)."""
    cell: str = "lstm"  # simple_rnn | gru | lstm
    units: int = 128
    dropout: float = 0.0
    recurrent_dropout: float = 0.0  # > 0 is much slower
    forget_bias: float = 1.0  # lstm: the forget gates' initial bias (1: Keras's)

    def validate(self) -> None:
        check_choice("cell", self.cell, choices.CELLS)
        check_range("forget_bias", self.forget_bias, -10.0, 10.0)
        if self.units < 1:
            raise ConfigError(f"units must be >= 1, got {self.units}")
        check_range("dropout", self.dropout, 0.0, 0.95)
        check_range("recurrent_dropout", self.recurrent_dropout, 0.0, 0.95)
        super().validate()


@dataclasses.dataclass
class Stack(_Validated):
    """How the recurrent layers are stacked: how many, and whether they read both ways."""
    layers: int = 1
    bidirectional: bool = True

    def validate(self) -> None:
        if self.layers < 1:
            raise ConfigError(f"layers must be >= 1, got {self.layers}")
        super().validate()


@dataclasses.dataclass
class Training(_Validated):
    """The fit loop's keys (training.fit)."""
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.001  # Adam
    clipnorm: float = 1.0  # each weight's gradient clipped to this norm; 0: off
    lr_decay: float = 1.0  # 1: off; see lr_decay_after
    lr_decay_after: int = 0  # 0: decay after an epoch with no better monitor; N: each after N
    ema: float = 0.0  # > 0: validate and keep a moving average of the weights, this momentum
    patience: int = 3  # epochs with no better monitor before stopping
    max_minutes: float = 0.0  # stop after the epoch that passes this many minutes; 0: no limit
    seed: int = 42
    mixed_precision: str = "off"  # float16 | bfloat16: compute in it, keep weights in float32
    xla: bool = False  # compile the training step with XLA (false: as Keras decides, off on CPUs)

    def validate(self) -> None:
        check_choice("mixed_precision", self.mixed_precision, choices.PRECISIONS)
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                              f"{self.batch_size}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_minutes < 0:
            raise ConfigError(f"max_minutes must be >= 0, got {self.max_minutes}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1] (1 turns it off), got {self.lr_decay}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1) (0 turns it off), got {self.ema}")
        if self.lr_decay_after < 0:
            raise ConfigError(f"lr_decay_after must be >= 0, got {self.lr_decay_after}")
        if self.patience < 0 or self.clipnorm < 0:
            raise ConfigError(f"patience and clipnorm must be >= 0, got {self.patience} and "
                              f"{self.clipnorm}")
        super().validate()


@dataclasses.dataclass
class Recipe(Training, Stack, Recurrent):
    """The shared keys of a task whose backbone is a stack (all but caption)."""
    # {variant: {key: value}}: defaults a task picks once it has read its data (settle)
    VARIANTS: ClassVar[dict[str, dict[str, Any]]] = {}
