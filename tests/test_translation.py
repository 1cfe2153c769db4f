"""Translation: pair readers, per-side tokenisation, the inference models against the
training model, greedy and beam search, and the CLI (predict streams, evaluate scores)."""

import json

import numpy as np
import pytest

from conftest import run_subprocess, run_without_tensorflow
from seqkit import corpora, metrics
from seqkit.errors import DataError

NAMES = [("Tom", "汤姆"), ("Mary", "玛丽"), ("I", "我"), ("We", "我们")]
THINGS = [("tea", "茶"), ("books", "书"), ("cats", "猫"), ("rice", "米饭")]
VERBS = [("like", "喜欢"), ("want", "想要"), ("buy", "买")]


def make_pairs():
    return [(f"{e} {v} {t}.", f"{z}{zv}{zt}。") for e, z in NAMES for v, zv in VERBS
            for t, zt in THINGS]


@pytest.fixture
def seqkit_log(caplog):
    """Records of the seqkit logger (which does not propagate to the root logger)."""
    import logging

    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def mt_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("mt")
    pairs = make_pairs()
    (d / "train.tsv").write_text("".join(f"{e}\t{z}\tCC-BY attribution\n" for e, z in pairs),
                                 encoding="utf-8")
    (d / "valid.tsv").write_text("".join(f"{e}\t{z}\n" for e, z in pairs[::4]),
                                 encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def mt_model(mt_data, tmp_path_factory):
    """One tiny model, trained once through the CLI."""
    from seqkit.cli import run

    out = tmp_path_factory.mktemp("mt_models") / "mt"
    code = run(["-q", "translation", "train", str(mt_data / "train.tsv"), "--valid",
                str(mt_data / "valid.tsv"), "-o", str(out), "--epochs", "12", "--units", "16",
                "--set", "embedding_dim=16", "--batch-size", "16", "--learning-rate", "0.02",
                "--seed", "1"])
    assert code == 0
    return out


# Reading pairs ------------------------------------------------------------------------------
def test_tsv_with_bom_extra_columns_and_blank_lines(tmp_path):
    p = tmp_path / "pairs.tsv"
    p.write_bytes("\ufeffHi.\t嗨。\tCC-BY #1\n\nRun!\t跑！\n".encode("utf-8"))
    pairs = corpora.read_pairs(p)
    assert pairs.sources == ["Hi.", "Run!"] and pairs.targets == ["嗨。", "跑！"]
    assert pairs.lines == [1, 3]
    rev = corpora.read_pairs(p, reverse=True)
    assert rev.sources == ["嗨。", "跑！"] and rev.targets == ["Hi.", "Run!"]


@pytest.mark.parametrize("bad_line, message", [
    ("no tab here", "no tab"),
    ("\t空的", "empty source"),
    ("empty target\t  ", "empty target"),
])
def test_bad_line_names_file_and_line(tmp_path, bad_line, message):
    p = tmp_path / "bad.tsv"
    p.write_text(f"a\tb\n{bad_line}\nc\td\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        corpora.read_pairs(p)
    assert str(err.value).startswith(f"{p}:2: ")


def test_skip_bad_lines_counts_them(tmp_path, seqkit_log):
    p = tmp_path / "bad.tsv"
    p.write_text("a\tb\nno tab\nc\t\ne\tf\n", encoding="utf-8")
    pairs = corpora.read_pairs(p, skip_bad_lines=True)
    assert pairs.sources == ["a", "e"] and pairs.skipped == 2
    assert "skipped 2 bad lines" in seqkit_log.text and f"{p}:2" in seqkit_log.text


def test_two_line_aligned_files(tmp_path):
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("Hello.\n\nThanks.\n", encoding="utf-8")
    tgt.write_text("你好。\n\n谢谢。\n", encoding="utf-8")
    pairs = corpora.read_parallel(src, tgt)
    assert pairs.sources == ["Hello.", "Thanks."] and pairs.lines == [1, 3]
    assert corpora.read_parallel(src, tgt, reverse=True).sources == ["你好。", "谢谢。"]
    tgt.write_text("你好。\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="same number of lines") as err:
        corpora.read_parallel(src, tgt)
    assert str(err.value).startswith(f"{src}:3: ")
    tgt.write_text("你好。\n再见。\n谢谢。\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty line") as err:
        corpora.read_parallel(src, tgt)
    assert str(err.value).startswith(f"{src}:2: ")


# The task's data: Source, read, split ------------------------------------------------------
def test_read_takes_an_open_direction_from_its_reference(mt_data):
    from seqkit.tasks import translation

    cfg = _config()
    tsv = str(mt_data / "valid.tsv")
    pairs = translation.read(translation.Source(tsv), cfg)
    assert pairs.reverse is False and pairs.sources[0] == "Tom like tea."
    for reference in (_pairs(reverse=True), translation.Preprocessor.fit(_pairs(True), cfg)):
        assert reference.reverse is True
        reversed_ = translation.read(translation.Source(tsv), cfg, reference=reference)
        assert reversed_.reverse is True and reversed_.sources == pairs.targets
        assert translation.read(translation.Source(tsv, reverse=False), cfg,
                                reference=reference).sources == pairs.sources


def test_split_holds_out_a_fraction_in_the_same_direction():
    from seqkit.errors import ConfigError
    from seqkit.tasks import translation

    data = _pairs(reverse=True)
    train, valid = translation.split(data, _config(valid_fraction=0.25, seed=5))
    assert (len(train.sources), len(valid.sources)) == (36, 12)
    assert train.reverse is valid.reverse is True
    assert sorted(train.lines + valid.lines) == data.lines
    assert all(data.sources[i - 1] == s for i, s in zip(valid.lines, valid.sources))
    again = translation.split(data, _config(valid_fraction=0.25, seed=5))
    assert again[1].lines == valid.lines
    one = translation.Pairs(["a"], ["b"], [1])
    with pytest.raises(ConfigError, match="too few"):
        translation.split(one, _config())


# Tokenisation per side ----------------------------------------------------------------------
def _config(**kw):
    from seqkit.tasks.translation import Config

    return Config(**{"embedding_dim": 8, "units": 8, "attention_units": 8, **kw})


def _pairs(reverse=False):
    from seqkit.tasks.translation import Pairs

    sources, targets = zip(*make_pairs())
    return Pairs(list(sources), list(targets), list(range(1, len(sources) + 1)),
                 reverse=reverse)


def test_each_side_has_its_own_tokenizer():
    from seqkit.tasks.translation import Preprocessor

    pre = Preprocessor.fit(_pairs(), _config())
    assert pre.source.tokens("Tom likes TEA.") == ["tom", "likes", "tea", "."]
    assert pre.target.tokens("汤姆喜欢茶。") == ["汤", "姆", "喜", "欢", "茶", "。"]
    ids = pre.target.encode("汤姆喜欢茶。")
    assert pre.target.detokenize(ids) == "汤姆喜欢茶。"
    pre = Preprocessor.fit(_pairs(), _config(source_tokenizer="whitespace",
                                             target_tokenizer="char"))
    assert pre.source.tokens("Tom likes tea.") == ["tom", "likes", "tea."]
    again = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert again.target.vocab == pre.target.vocab and again.source.tokenizer == "whitespace"


def test_sentencepiece_side_trained_on_the_data():
    from seqkit.tasks.translation import Preprocessor

    pre = Preprocessor.fit(_pairs(), _config(source_tokenizer="sentencepiece", vocab_size=30))
    pieces = pre.source.tokens("Mary likes books.")
    assert pieces[0].startswith("\u2581") and "".join(pieces).replace("\u2581", " ").strip() \
        == "mary likes books."
    assert pre.target.tokenizer == "auto"
    again = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert again.source.tokens("Mary likes books.") == pieces
    assert again.source.detokenize(again.source.vocab.encode(pieces)) == "mary likes books."


# The inference models -----------------------------------------------------------------------
@pytest.mark.parametrize("cell, attention, bidirectional", [
    ("gru", "luong", True), ("lstm", "bahdanau", True), ("lstm", "none", False)])
def test_step_models_match_teacher_forcing(cell, attention, bidirectional):
    """Encoder + one decoder step at a time give the training model's next-token
    distribution, for sources of different lengths padded together."""
    import keras

    from seqkit.tasks.translation import Preprocessor, Translator, build_model

    keras.utils.set_random_seed(0)
    cfg = _config(cell=cell, attention=attention, bidirectional=bidirectional, dropout=0.3)
    pre = Preprocessor.fit(_pairs(), cfg)
    model = build_model(cfg, pre)
    src, tgt_in, _ = pre.encode_pairs(["Tom likes tea.", "We want rice and books."],
                                      ["汤姆喜欢茶。", "我们想要米饭。"])
    from seqkit.batching import pad

    s, t = pad(src), pad(tgt_in)
    logits = np.asarray(model({"source": s, "target_in": t}, training=False))
    expected = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    translator = Translator(model, cfg, pre)
    states = translator.start(src)
    allowed = [i for i in range(len(pre.target.vocab)) if i not in translator.banned]
    for step in range(max(len(x) for x in tgt_in)):
        log_probs, states = translator.step(t[:, step], states)
        renorm = expected[:, step, allowed] - np.log(
            np.exp(expected[:, step, allowed]).sum(-1, keepdims=True))
        for row in range(2):
            if step < len(tgt_in[row]):
                np.testing.assert_allclose(log_probs[row, allowed], renorm[row], atol=1e-4)


def test_saved_model_loads_safely_and_names_its_layers(mt_model):
    import keras

    model = keras.saving.load_model(mt_model / "model.keras", safe_mode=True)
    names = {layer.name for layer in model.layers}
    assert {"encoder", "target_embedding", "decoder", "attention", "logits"} <= names


def test_greedy_and_beam(mt_model):
    from seqkit.tasks.translation import Predictor

    predictor = Predictor(str(mt_model))
    sources = ["Tom likes tea.", "We buy rice.", "Mary wants cats."]
    translator = predictor.translator
    greedy = translator.translate(sources, beam_size=1)
    beam1 = predictor.predict(sources, beam_size=1)
    assert [g[0]["translation"] for g in greedy] == [r["translation"] for r in beam1]
    translator.config.length_alpha = 0.0  # rank by log-probability alone
    beam = translator.translate(sources, beam_size=4, n_best=3)
    for g, b in zip(greedy, beam):
        assert len(b) == 3 and b[0]["score"] >= g[0]["score"] - 1e-6
        assert [h["score"] for h in b] == sorted([h["score"] for h in b], reverse=True)
        assert len({h["translation"] for h in b}) == 3
    learned = predictor.predict(["Tom likes tea."], beam_size=4)[0]["translation"]
    assert learned.startswith("汤姆") and learned.endswith("。")


# The command line -------------------------------------------------------------------------
def test_predict_streams_one_line_per_line(mt_model, tmp_path, cli):
    src = tmp_path / "in.txt"
    src.write_text("Tom likes tea.\n\nWe want books.\n", encoding="utf-8")
    r = cli("translation", "predict", mt_model, src, "--beam-size", "3")
    lines = r.out.split("\n")
    assert r.code == 0 and len(lines) == 4 and lines[3] == "" and lines[1] == ""
    assert lines[0] and lines[2] and r.err == ""


def test_predict_jsonl_scores_and_n_best(mt_model, cli):
    import io as stdio
    import sys

    sys.stdin = stdio.TextIOWrapper(stdio.BytesIO("Tom likes tea.\n\n".encode()))
    try:
        r = cli("translation", "predict", mt_model, "--format", "jsonl", "--n-best", "2")
    finally:
        sys.stdin = sys.__stdin__
    records = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and len(records) == 2
    assert records[0]["source"] == "Tom likes tea." and records[0]["score"] < 0
    assert len(records[0]["n_best"]) == 2 and records[0]["n_best"][0]["translation"] \
        == records[0]["translation"]
    assert records[1] == {"source": "", "translation": "", "score": None, "n_best": []}
    r = cli("translation", "predict", mt_model, "-", "--n-best", "2")
    assert r.code == 2 and "--format jsonl" in r.err


def test_predict_in_a_pipeline(mt_model):
    proc = run_subprocess("translation", "predict", str(mt_model), "--beam-size", "1",
                          stdin="Tom likes tea.\n\nI buy rice.\n")
    assert proc.returncode == 0 and proc.stdout.decode().count("\n") == 3
    assert proc.stdout.decode().split("\n")[1] == "" and proc.stderr == b""


def test_evaluate_json_and_report(mt_model, mt_data, cli):
    r = cli("translation", "evaluate", mt_model, mt_data / "valid.tsv", "--json")
    result = json.loads(r.out)
    assert r.code == 0 and {"bleu", "chrf", "bleu_signature"} <= set(result)
    assert result["tokenize"] == "zh" and "tok:zh" in result["bleu_signature"]
    assert 0 <= result["chrf"] <= 100 and result["sentences"] == 12
    r = cli("translation", "evaluate", mt_model, mt_data / "valid.tsv", "--beam-size", "1",
            "--target-lang", "en")
    assert r.code == 0 and r.out.startswith("BLEU") and "tok:13a" in r.out


def test_evaluate_limit_scores_the_first_pairs(mt_model, mt_data):
    from seqkit import lifecycle
    from seqkit.tasks import translation

    result = lifecycle.evaluate(translation, mt_model, translation.Source(
        str(mt_data / "valid.tsv")), beam_size=1, limit=5)
    assert result["sentences"] == 5 and result["beam_size"] == 1


def test_chinese_target_picks_the_zh_tokenizer():
    assert metrics.bleu_tokenizer(["我很好。", "谢谢！"]) == "zh"
    assert metrics.bleu_tokenizer(["I am fine.", "Thanks!"]) == "13a"
    assert metrics.bleu_tokenizer(["I am fine."], target_lang="zh") == "zh"
    assert metrics.bleu_tokenizer(["我很好。"], target_lang="en") == "13a"
    assert metrics.translation(["我很好。"], ["我很好。"])["bleu"] == 100.0


def test_bad_training_data_exit_1_or_skipped(mt_data, tmp_path, cli, seqkit_log):
    bad = tmp_path / "bad.tsv"
    good = (mt_data / "train.tsv").read_text(encoding="utf-8")
    bad.write_text(good + "no tab on this line\n", encoding="utf-8")
    r = cli("translation", "train", bad, "-o", tmp_path / "m", "--epochs", "1")
    assert r.code == 1 and f"{bad}:49: no tab" in r.err and r.out == ""
    r = cli("translation", "train", bad, "-o", tmp_path / "m", "--skip-bad-lines", "--epochs",
            "1", "--units", "4", "--set", "embedding_dim=4")
    assert r.code == 0 and "skipped 1 bad line (the first: " in seqkit_log.text
    r = cli("translation", "train", "-o", tmp_path / "m2")
    assert r.code == 1 and "no data" in r.err


def test_train_from_two_files_reversed(tmp_path, cli):
    pairs = make_pairs()
    (tmp_path / "en.txt").write_text("".join(e + "\n" for e, _ in pairs), encoding="utf-8")
    (tmp_path / "zh.txt").write_text("".join(z + "\n" for _, z in pairs), encoding="utf-8")
    r = cli("-q", "translation", "train", "--source-file", tmp_path / "en.txt", "--target-file",
            tmp_path / "zh.txt", "--reverse", "-o", tmp_path / "m", "--epochs", "1",
            "--units", "4", "--set", "embedding_dim=4", "--tokenizer", "char")
    assert r.code == 0
    pre = json.loads((tmp_path / "m" / "preprocessor.json").read_text(encoding="utf-8"))
    assert pre["reverse"] is True and "汤" in pre["source"]["vocab"]["tokens"]
    assert pre["source"]["tokenizer"] == pre["target"]["tokenizer"] == "char"


def test_onnx_backend_translates_as_keras_does(mt_model, mt_data, tmp_path, cli):
    """Training writes encoder.onnx and decoder.onnx; the NumPy search over them (no
    TensorFlow in the process) gives Keras's greedy and beam translations, and scores within
    1e-4 (2e-4 between the 4-decimal outputs)."""

    assert (mt_model / "encoder.onnx").is_file() and (mt_model / "decoder.onnx").is_file()
    src = tmp_path / "src.txt"
    src.write_text("Tom likes tea.\n\nI buy rice.\nunseen words 未见\n", encoding="utf-8")
    for beam in ("1", "3"):
        args = ("translation", "predict", mt_model, src, "--format", "jsonl", "--beam-size",
                beam, "--n-best", beam)
        runs = {b: [json.loads(line) for line in cli(*args, "--backend", b).out.splitlines()]
                for b in ("onnx", "keras")}
        assert len(runs["onnx"]) == len(runs["keras"]) == 4
        for a, b in zip(runs["onnx"], runs["keras"]):
            assert a["translation"] == b["translation"]
            if a["score"] is not None:
                assert abs(a["score"] - b["score"]) <= 2e-4
    run_without_tensorflow("translation", "predict", mt_model, src)


def test_evaluate_plots_one_attention_map_per_input(mt_model, mt_data, tmp_path):
    pytest.importorskip("matplotlib")
    from seqkit.cli import run
    from seqkit.tasks import translation

    source = translation.Source(str(mt_data / "valid.tsv"))
    maps = translation.attention_maps(str(mt_model), source, 2, beam_size=1)
    assert len(maps) == 2
    for item in maps:  # a row per output token and the end, summing to 1 over the source
        assert item["weights"].shape == (len(item["outputs"]), len(item["inputs"]))
        assert np.allclose(item["weights"].sum(axis=1), 1, atol=1e-4)
        assert item["outputs"][-1] == "</s>"
    code = run(["-q", "translation", "evaluate", str(mt_model), str(mt_data / "valid.tsv"),
                "--plots", str(tmp_path), "--plots-count", "3", "--beam-size", "1"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"attention_{i}.png"
                                                          for i in (1, 2, 3)]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in tmp_path.iterdir())
