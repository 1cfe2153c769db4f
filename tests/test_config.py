import dataclasses
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
    config = configlib.resolve(module.Config, recipe, task=task)
    assert config == module.Config()
    # and lists every key, the shared ones (seqkit.config) included, each once: a key
    # that depends on the variant is in each variant's table and not at the top level
    variants = getattr(module.Config, "VARIANTS", {})
    data = configlib.read_recipe(recipe)
    tables = {name: data.pop(name) for name in variants}
    assert all(table == variants[name] for name, table in tables.items())
    for table in tables.values():
        assert set(data) | set(table) == set(configlib.field_names(module.Config))
        assert not set(data) & set(table)
    for name, table in variants.items():
        assert configlib.settle(config, name) == dataclasses.replace(module.Config(), **table)


@pytest.mark.parametrize("item", ["dropout=nan", "clipnorm=nan", "forget_bias=inf",
                                  "max_minutes=-inf", "learning_rate=NaN"])
def test_a_float_key_must_be_finite(item):
    """nan passes every range check (its comparisons are all false): it is refused first."""
    from seqkit.tasks import sentiment

    with pytest.raises(ConfigError, match="must be a finite number"):
        configlib.resolve(sentiment.Config, None, {}, [item])


def test_settle_gives_the_variant_only_the_keys_nobody_set(tmp_path):
    """dataclass < VARIANTS[v] < recipe < recipe's [v] table < options < --set."""
    from seqkit.tasks import lm

    recipe = tmp_path / "r.toml"
    recipe.write_text("units = 64\ndropout = 0.3\nepochs = 3\n"
                      "[char]\ndropout = 0.1\nbatch_size = 7\nlearning_rate = 0.01\n"
                      "[word]\nbatch_size = 9\n")
    config = configlib.resolve(lm.Config, recipe, {"learning_rate": 0.005, "epochs": None},
                               ["patience=9"])
    char = configlib.settle(config, "char", level="char")
    assert (char.level, char.units, char.dropout, char.batch_size, char.learning_rate,
            char.patience, char.epochs) == ("char", 64, 0.1, 7, 0.005, 9, 3)
    # the keys no layer set take the char recipe's values
    assert (char.sequence_length, char.embedding_dim) == (lm.CHAR["sequence_length"],
                                                          lm.CHAR["embedding_dim"])
    word = configlib.settle(config, "word")
    assert (word.units, word.dropout, word.batch_size, word.sequence_length) == (
        64, 0.3, 9, lm.WORD["sequence_length"])
    # a config built in code states every value: settle leaves it alone
    assert configlib.settle(lm.Config(units=8), "char") == lm.Config(units=8)


def test_a_variant_table_is_checked_like_the_top_level(tmp_path):
    from seqkit.tasks import lm

    recipe = tmp_path / "r.toml"
    recipe.write_text("[char]\nunits = 'many'\n")
    with pytest.raises(ConfigError, match=r"r.toml \[char\].*units must be int"):
        configlib.resolve(lm.Config, recipe)
    recipe.write_text("[char]\nunit = 8\n")
    with pytest.raises(ConfigError, match=r"\[char\].*unknown key unit"):
        configlib.resolve(lm.Config, recipe)
    recipe.write_text("[chars]\nunits = 8\n")  # not a variant: an unknown key
    with pytest.raises(ConfigError, match="unknown key chars"):
        configlib.resolve(lm.Config, recipe)
    recipe.write_text("[char]\nunits = 0\n")  # checked once the level is known
    config = configlib.resolve(lm.Config, recipe)
    with pytest.raises(ConfigError, match=r"r.toml \[char\]: units must be >= 1"):
        configlib.settle(config, "char")
