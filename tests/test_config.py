from dataclasses import dataclass

import pytest

from seqkit import config as configlib
from seqkit.cli import TASKS
from seqkit.errors import ConfigError


@dataclass
class Demo:
    units: int = 8
    rate: float = 0.1
    cell: str = "lstm"
    bidirectional: bool = False

    def validate(self):
        configlib.check_choice("cell", self.cell, ["lstm", "gru"])


def test_layers_apply_in_order(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("units = 16\nrate = 1\ncell = 'gru'\n")
    cfg = configlib.resolve(Demo, recipe, {"units": 32, "rate": None}, ["bidirectional=true"])
    assert cfg == Demo(units=32, rate=1.0, cell="gru", bidirectional=True)


def test_set_overrides_options():
    cfg = configlib.resolve(Demo, None, {"units": 32}, ["units=64", "rate=0.5"])
    assert cfg.units == 64 and cfg.rate == 0.5


def test_unknown_key_lists_known_ones(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("unitz = 16\n")
    with pytest.raises(ConfigError) as err:
        configlib.resolve(Demo, recipe)
    assert "unknown key unitz" in str(err.value)
    assert "known keys: units, rate, cell, bidirectional" in str(err.value)
    assert str(recipe) in str(err.value)


@pytest.mark.parametrize("item, message", [
    ("units=many", "units must be int"),
    ("bidirectional=maybe", "bidirectional must be bool"),
    ("novalue", "expects KEY=VALUE"),
])
def test_bad_overrides(item, message):
    with pytest.raises(ConfigError, match=message):
        configlib.resolve(Demo, None, None, [item])


def test_wrong_type_in_recipe(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("units = 'eight'\n")
    with pytest.raises(ConfigError, match="units must be int"):
        configlib.resolve(Demo, recipe)


def test_validate_runs_after_resolving():
    with pytest.raises(ConfigError, match="cell must be one of"):
        configlib.resolve(Demo, None, None, ["cell=transformer"])


def test_bad_toml_and_missing_recipe(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("units = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        configlib.resolve(Demo, bad)
    with pytest.raises(ConfigError, match="no such recipe"):
        configlib.resolve(Demo, tmp_path / "none.toml")


def test_dumps_reads_back_and_checks_task(tmp_path):
    cfg = Demo(units=3, rate=0.25, cell="gru", bidirectional=True)
    saved = tmp_path / "config.toml"
    saved.write_text(configlib.dumps(cfg, "demo", "0.0"))
    assert configlib.resolve(Demo, saved, task="demo") == cfg
    with pytest.raises(ConfigError, match="recipe is for task 'demo'"):
        configlib.resolve(Demo, saved, task="other")


@pytest.mark.parametrize("task", list(TASKS))
def test_shipped_recipe_matches_config_defaults(task):
    import importlib
    from pathlib import Path

    module = importlib.import_module(f"seqkit.tasks.{task}")
    recipe = Path(__file__).resolve().parent.parent / "tasks" / f"{task}.toml"
    assert configlib.resolve(module.Config, recipe, task=task) == module.Config()
    # and lists every key, the shared ones (seqkit.config) included
    assert set(configlib.read_recipe(recipe)) == set(configlib.field_names(module.Config))


@pytest.mark.parametrize("item", ["dropout=nan", "clipnorm=nan", "forget_bias=inf",
                                  "max_minutes=-inf", "learning_rate=NaN"])
def test_a_float_key_must_be_finite(item):
    """nan passes every range check (its comparisons are all false): it is refused first."""
    from seqkit.tasks import sentiment

    with pytest.raises(ConfigError, match="must be a finite number"):
        configlib.resolve(sentiment.Config, None, {}, [item])
