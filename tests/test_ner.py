"""seqkit ner: the CoNLL reader, tag schemes, the CRF against brute force, character and
pretrained word features, predict offsets, and the command line."""

import itertools
import json
import re

import numpy as np
import pytest

from conftest import TINY, make_ner_en, write_conll
from seqkit import corpora, schemes
from seqkit.errors import DataError

# A fixed high rate: the toy model reaches validation F1 1.0 in 9 epochs (0.95 after 8, one
# entity type short, since its recurrent layers stopped reading padding as tokens).
SMALL = [*TINY, "--epochs", "12", "--learning-rate", "0.05", "--patience", "12",
         "--set", "lr_decay=1.0"]


@pytest.fixture(scope="session")
def ner_en_model(data_dir, tmp_path_factory):
    """English, word-level, CRF and char CNN (the defaults), trained through the CLI."""
    from seqkit.cli import run

    out = tmp_path_factory.mktemp("models") / "ner_en"
    code = run(["-q", "ner", "train", str(data_dir / "ner_en.conll"), "--valid",
                str(data_dir / "ner_en_valid.conll"), "-o", str(out), *SMALL])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def ner_zh_model(data_dir, tmp_path_factory):
    """Chinese, character-level BMES, softmax output."""
    from seqkit.cli import run

    out = tmp_path_factory.mktemp("models") / "ner_zh"
    code = run(["-q", "ner", "train", str(data_dir / "ner_zh.bmes"), "-o", str(out),
                "--no-crf", *SMALL])
    assert code == 0
    return out


# --- reader ----------------------------------------------------------------------------------
def test_reader_sentences_docstart_blank_lines_and_tabs(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("-DOCSTART- -X- O\n\n\nMara NNP B-PER\nQuell NNP I-PER\n\n\n"
                    "-DOCSTART- -X- O\nhi\tUH\tO\n", encoding="utf-8")
    sentences = corpora.read_conll(path)
    assert [s.tokens for s in sentences] == [["Mara", "Quell"], ["hi"]]
    assert [s.tags for s in sentences] == [["B-PER", "I-PER"], ["O"]]
    assert sentences[0].lines == [4, 5] and sentences[1].lines == [9]


def test_reader_column_options(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("B-PER Mara x\nO went x\n", encoding="utf-8")
    [sentence] = corpora.read_conll(path, token_column=2, tag_column=1)
    assert sentence.tokens == ["Mara", "went"] and sentence.tags == ["B-PER", "O"]
    with pytest.raises(DataError, match="a.conll:1: no tag column 5: the line has 3 columns"):
        corpora.read_conll(path, tag_column=5)


@pytest.mark.parametrize("content, expected", [
    ("Mara\nQuell B-PER\n", "a.conll:1: found 1 column ('Mara'), expected at least 2"),
    ("Mara NNP B-PER\nQuell NNP\n", "a.conll:2: the tag column is missing; found 2 columns, "
                                    "expected 3 like line 1"),
    ("Mara B-PER\n\nQuell NNP I-PER\n", "a.conll:3: found 3 columns, expected 2 like line 1"),
    ("\n\n", "a.conll: no sentences"),
])
def test_reader_bad_lines(tmp_path, content, expected):
    path = tmp_path / "a.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        corpora.read_conll(path)
    assert expected in str(err.value)


def test_validation_tags_are_checked_against_the_training_scheme(tmp_path):
    from seqkit.tasks import ner

    train_path, valid_path = tmp_path / "t.conll", tmp_path / "v.conll"
    train_path.write_text("Mara B-PER\nQuell I-PER\n", encoding="utf-8")
    valid_path.write_text("Li S-PER\n", encoding="utf-8")  # BIOES on its own, not BIO
    train = ner.read(ner.Source(str(train_path)), ner.Config())
    assert train.scheme == "bio" and [s.tokens for s in train.sentences] == [["Mara", "Quell"]]
    with pytest.raises(DataError, match="v.conll:1: tag 'S-PER' is outside the BIO scheme"):
        ner.read(ner.Source(str(valid_path)), ner.Config(), reference=train)
    assert ner.read(ner.Source(str(valid_path)), ner.Config()).scheme == "bioes"


def test_import_loads_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, seqkit.tasks.ner, seqkit.tagging; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr


# --- schemes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tags, scheme", [
    (["B-PER", "I-PER", "O", "B-LOC"], "bio"),
    (["I-PER", "I-PER", "B-PER", "O"], "iob1"),
    (["B-PER", "I-PER", "E-PER", "S-LOC"], "bioes"),
    (["B-PER", "M-PER", "E-PER", "O", "S-LOC"], "bmes"),
    (["O", "O"], "bio"),
])
def test_scheme_detection(tags, scheme):
    assert schemes.detect([tags]) == scheme


def test_tags_outside_the_scheme():
    assert schemes.check("M-ORG", "bmes") is None
    assert "outside the BMES scheme; expected O or B-/M-/E-/S-TYPE" in schemes.check("I-ORG",
                                                                                       "bmes")
    for bad in ("PER", "B_PER", "B-", "XX-PER"):
        assert schemes.check(bad, "bio") is not None


def test_bmes_entities_and_scores():
    from seqkit import metrics

    tags = ["B-NAME", "M-NAME", "E-NAME", "O", "S-LOC"]
    assert schemes.entities(tags, "bmes") == [("NAME", 0, 3), ("LOC", 4, 5)]
    m = metrics.entity_scores([tags], [["B-NAME", "M-NAME", "E-NAME", "O", "O"]], "bmes")
    assert (m["precision"], m["recall"], m["accuracy"]) == (1.0, 0.5, 0.8)
    assert m["per_type"]["LOC"]["f1"] == 0.0 and m["per_type"]["NAME"]["f1"] == 1.0


@pytest.mark.parametrize("scheme, tags", [
    ("bio", ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "O"]),
    ("iob1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "O"]),
    ("bioes", ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "O"]),
    ("bmes", ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "O"]),
])
def test_scheme_conversion_keeps_the_entities(scheme, tags):
    spans = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]
    assert schemes.from_entities(6, spans, scheme) == tags
    for other in schemes.SCHEMES:
        assert schemes.entities(schemes.convert(tags, scheme, other), other) == spans
    assert schemes.convert(["I-ORG", "I-ORG", "I-ORG"], "bio", "bmes") == ["B-ORG", "M-ORG",
                                                                           "E-ORG"]


# --- CRF -------------------------------------------------------------------------------------
def _path_score(emissions, path, transitions, start, end):
    score = start[path[0]] + end[path[-1]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        score += transitions[path[t - 1], path[t]] + emissions[t, path[t]]
    return score


def test_crf_matches_brute_force_enumeration():
    from seqkit.crf import CRF

    rng = np.random.default_rng(0)
    batch, time, n_tags, lengths = 4, 5, 3, [5, 3, 1, 4]
    emissions = rng.normal(size=(batch, time, n_tags)).astype("float32")
    mask = np.array([[t < n for t in range(time)] for n in lengths])
    tags = rng.integers(0, n_tags, (batch, time))
    crf = CRF()
    crf.build((None, None, n_tags))
    for weight in (crf.transitions, crf.start, crf.end):
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    transitions, start, end = (np.asarray(w.numpy()) for w in (crf.transitions, crf.start,
                                                                crf.end))
    nll = np.asarray(crf.negative_log_likelihood(emissions, tags, mask))
    best = np.asarray(crf.decode(emissions, mask))
    for b, n in enumerate(lengths):
        paths = list(itertools.product(range(n_tags), repeat=n))
        scores = np.array([_path_score(emissions[b, :n], p, transitions, start, end)
                           for p in paths])
        log_z = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
        gold = _path_score(emissions[b, :n], tags[b, :n], transitions, start, end)
        assert nll[b] == pytest.approx(log_z - gold, rel=1e-5, abs=1e-5)
        assert tuple(best[b, :n]) == paths[int(scores.argmax())]
        assert (best[b, n:] == best[b, n - 1]).all()  # padding repeats the last tag


def test_crf_model_saves_and_loads_in_safe_mode(tmp_path):
    import keras

    from seqkit.crf import CRF

    x = keras.Input((None, 4), name="x")
    m = keras.Input((None,), dtype="bool", name="m")
    model = keras.Model([x, m], CRF(name="crf")(keras.layers.Dense(3, name="em")(x), mask=m))
    model.get_layer("crf").transitions.assign(np.eye(3, dtype="float32") * 2)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    data = [np.random.default_rng(1).normal(size=(2, 6, 4)).astype("float32"),
            np.array([[1] * 6, [1] * 3 + [0] * 3], bool)]
    np.testing.assert_array_equal(model.predict(data, verbose=0), loaded.predict(data, verbose=0))
    np.testing.assert_array_equal(loaded.get_layer("crf").transitions.numpy(), np.eye(3) * 2)


# --- features --------------------------------------------------------------------------------
def test_char_features_for_words_not_for_characters():
    from seqkit.tasks import ner

    english = ner.Tagged([corpora.Sentence(t, g, []) for t, g in make_ner_en(6)], "bio", "")
    pre = ner.Preprocessor.fit(english, ner.Config())
    assert pre.chars is not None and pre.tokenizer == "auto" and pre.bigrams is None
    inputs = pre.inputs([["Zorblax", "2024"]])
    assert inputs["tokens"] == [[pre.vocab.unk_id, pre.vocab.unk_id]]  # unseen words...
    assert inputs["chars"][0][0] == pre.chars.encode("Zorblax")  # ...keep their characters
    assert pre.word_key("Port-99") == "port-00"
    chinese = ner.Tagged([corpora.Sentence(list("张伟在北京"),
                                           ["B-NAME", "E-NAME", "O", "B-LOC", "E-LOC"], [])] * 2,
                         "bmes", "")
    pre = ner.Preprocessor.fit(chinese, ner.Config())
    assert pre.chars is None and pre.tokenizer == "char"
    assert pre.bigram_keys(["北", "京"]) == ["北 京", "京 </s>"]
    inputs = pre.inputs([["在", "北", "京"], ["南", "京"]])
    assert set(inputs) == {"tokens", "bigrams"}
    assert inputs["bigrams"][0] == pre.bigrams.encode(["在 北", "北 京", "京 </s>"])
    assert inputs["bigrams"][1] == [pre.bigrams.unk_id, pre.bigrams.id("京 </s>")]


def test_word_shapes_and_the_learnt_scheme():
    from seqkit import tagging
    from seqkit.tasks import ner

    shapes = [tagging.SHAPES[tagging.word_shape(t)] for t in
              ("the", "Paris", "EU", "iPhone", "1996", "4-0", "--", "Ärzte")]
    assert shapes == ["lower", "Capitalised", "UPPER", "mIxed", "digits", "has digit", "other",
                      "Capitalised"]
    english = ner.Tagged([corpora.Sentence(t, g, []) for t, g in make_ner_en(6)], "bio", "")
    pre = ner.Preprocessor.fit(english, ner.Config())
    assert pre.shapes and pre.inputs([["EU", "talks"]])["shapes"] == [[3, 1]]
    assert pre.model_scheme == "bioes" and "S-PER" in pre.tags and "E-PER" in pre.tags
    ids = pre.encode_tags([["B-PER", "I-PER", "O", "B-LOC"]])[0]
    assert [pre.tags[i] for i in ids] == ["B-PER", "E-PER", "O", "S-LOC"]
    assert pre.decode_tags(ids) == ["B-PER", "I-PER", "O", "B-LOC"]  # back in the data's
    same = ner.Preprocessor.fit(english, ner.Config(model_scheme="same", case_features="off"))
    assert same.model_scheme == "bio" and "S-PER" not in same.tags
    assert "shapes" not in same.inputs([["EU"]])
    assert ner.Preprocessor.from_json(pre.to_json()).model_scheme == "bioes"


def test_char_pool_ignores_padding_characters():
    from seqkit.backbones import CharPool

    features = np.array([[[[1.0], [5.0], [9.0]], [[3.0], [3.0], [3.0]]]])  # (1, 2, 3, 1)
    ids = np.array([[[4, 2, 0], [0, 0, 0]]])
    out = np.asarray(CharPool()([features, ids]))
    assert out.tolist() == [[[5.0], [0.0]]]  # padding's 9 never wins; an empty word is 0


def test_pretrained_embeddings(data_dir, tmp_path, cli):
    import keras

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("3 6\nvisited 1 2 3 4 5 6\nzeppelin 6 5 4 3 2 1\n"
                       "mara 0.5 0.5 0.5 0.5 0.5 0.5\n", encoding="utf-8")
    out = tmp_path / "m"
    r = cli("-q", "ner", "train", data_dir / "ner_en.conll", "-o", out, "--embeddings",
            vectors, "--epochs", "1", "--learning-rate", "1e-7", "--units", "4", "--no-crf",
            "--char-features", "none", "--batch-size", "64")
    assert r.code == 0, r.err
    pre = json.loads((out / "preprocessor.json").read_text())
    words = pre["vocab"]["tokens"]
    assert "zeppelin" in words  # a pretrained word unseen in training joins the vocabulary
    assert "embedding_dim = 6" in (out / "config.toml").read_text()
    table = keras.saving.load_model(out / "model.keras", safe_mode=True).get_layer(
        "embedding").get_weights()[0]
    np.testing.assert_allclose(table[words.index("visited")], [1, 2, 3, 4, 5, 6], atol=1e-3)
    np.testing.assert_allclose(table[words.index("zeppelin")], [6, 5, 4, 3, 2, 1], atol=1e-3)
    vectors.write_text("visited 1 2 3\nmara 1 2\n", encoding="utf-8")
    r = cli("ner", "train", data_dir / "ner_en.conll", "-o", tmp_path / "m2", "--embeddings",
            vectors)
    assert r.code == 1 and "vectors.txt:2: found 2 components, expected 3" in r.err


# --- predict ---------------------------------------------------------------------------------
def test_decode_offsets_index_the_line():
    from seqkit import text
    from seqkit.tasks import ner

    line = "Dr.  Mara Quell-Smith flew to Port Edra!"
    spans = text.tokenize_spans(line, "auto")
    tokens = [tok for tok, _, _ in spans]
    tags = ["B-PER" if tok == "Mara" else "I-PER" if tok in ("Quell", "-", "Smith") else
            "B-LOC" if tok == "Port" else "I-LOC" if tok == "Edra" else "O" for tok in tokens]
    entities = ner.decode(line, [(a, b) for _, a, b in spans], tags, "bio")
    assert entities == [{"text": "Mara Quell-Smith", "type": "PER", "start": 5, "end": 21},
                        {"text": "Port Edra", "type": "LOC", "start": 30, "end": 39}]


def test_predict_english_offsets_and_empty_line(ner_en_model, tmp_path, cli):
    src = tmp_path / "in.txt"
    lines = ["Mara Quell visited Port Edra .", "", "  Tobin works for Harbor Bank in Saltmere."]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = cli("ner", "predict", ner_en_model, src)
    records = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and [rec["text"] for rec in records] == lines
    assert records[1] == {"text": "", "entities": []}
    found = [e for rec in records for e in rec["entities"]]
    assert {(e["text"], e["type"]) for e in found} >= {("Mara Quell", "PER"),
                                                       ("Harbor Bank", "ORG")}
    for rec in records:
        for e in rec["entities"]:
            assert rec["text"][e["start"]:e["end"]] == e["text"]


def test_predict_chinese_offsets(ner_zh_model, cli):
    from seqkit.tasks import ner

    lines = ["李娜在上海工作。", "", "ＡＢ张伟在北京工作。"]
    records = ner.Predictor(str(ner_zh_model)).predict(lines)
    assert records[1]["entities"] == []
    assert [(e["text"], e["type"]) for e in records[0]["entities"]] == [("李娜", "NAME"),
                                                                      ("上海", "LOC")]
    assert ("北京", "LOC") in [(e["text"], e["type"]) for e in records[2]["entities"]]
    for rec in records:
        for e in rec["entities"]:
            assert rec["text"][e["start"]:e["end"]] == e["text"]


def test_predict_conll_in_and_out(ner_en_model, data_dir, cli):
    r = cli("ner", "predict", ner_en_model, data_dir / "ner_en_valid.conll", "--input-format",
            "conll", "--format", "conll")
    blocks = r.out.strip("\n").split("\n\n")
    assert r.code == 0 and len(blocks) == 12
    gold = [line.split()[0] for line in
            (data_dir / "ner_en_valid.conll").read_text().splitlines() if line.strip()]
    assert [line.split("\t")[0] for block in blocks for line in block.splitlines()] == gold
    tags = {line.split("\t")[1][:2] for block in blocks for line in block.splitlines()}
    assert tags <= {"O", "B-", "I-"} and "B-" in tags  # the data's BIO, not the model's BIOES


def test_predictor_reads_both_input_formats(ner_en_model, data_dir, tmp_path):
    from seqkit.tasks import ner

    predictor = ner.Predictor(str(ner_en_model))
    [sentences] = list(predictor.chunks(str(data_dir / "ner_en_valid.conll"),
                                        input_format="conll"))
    assert len(sentences) == 12 and all(isinstance(tok, str) for tok in sentences[0])
    lines = tmp_path / "in.txt"
    lines.write_text("a\n\nb\nc\n", encoding="utf-8")
    assert list(predictor.chunks(str(lines), 2)) == [["a", ""], ["b", "c"]]
    tokens = ["Mara", "Quell", "visited", "Port", "Edra", "."]
    [from_tokens, from_line] = predictor.predict([tokens, "Mara Quell visited Port Edra ."])
    assert from_tokens["text"] == " ".join(tokens) and from_tokens["tokens"] == tokens
    assert from_tokens == from_line  # the same tokens, the same offsets, the same tags


# --- evaluate and the command line -----------------------------------------------------------
def test_evaluate_json_and_report(ner_en_model, data_dir, cli):
    r = cli("ner", "evaluate", ner_en_model, data_dir / "ner_en_valid.conll", "--json")
    result = json.loads(r.out)
    assert r.code == 0 and result["f1"] >= 0.8
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    assert set(result["per_type"]) == {"PER", "LOC", "ORG"}
    r = cli("ner", "evaluate", ner_en_model, data_dir / "ner_en_valid.conll")
    assert r.code == 0 and r.out.startswith("f1") and "support" in r.out


@pytest.mark.parametrize("content, expected", [
    ("Mara B-PER\nQuell\n", "bad.conll:2: the tag column is missing"),
    ("Mara x B-PER\nQuell I-PER\n", "bad.conll:2: the tag column is missing; found 2 columns, "
                                    "expected 3"),
    ("Mara B-PER\nQuell x y I-PER\n", "bad.conll:2: found 4 columns, expected 2 like line 1"),
    ("Mara B-PER\nQuell I-PER\n\nLi M-PER\n",  # M- makes it BMES, where I- has no place
     "bad.conll:2: tag 'I-PER' is outside the BMES scheme"),
    ("Mara PERSON\n", "bad.conll:1: tag 'PERSON' is outside the BIO scheme"),
])
def test_bad_training_data_is_one_line_with_file_and_line(content, expected, tmp_path, cli):
    bad = tmp_path / "bad.conll"
    bad.write_text(content, encoding="utf-8")
    r = cli("-q", "ner", "train", bad, "-o", tmp_path / "m")
    lines = r.err.strip().splitlines()
    assert r.code == 1 and len(lines) == 1 and lines[0].startswith("seqkit: error: ")
    assert expected in lines[0]
    assert not (tmp_path / "m").exists()


def test_scheme_option_and_evaluate_checks_tags(ner_en_model, tmp_path, cli):
    data = write_conll(tmp_path / "d.conll", make_ner_en(6))
    r = cli("ner", "train", data, "-o", tmp_path / "m", "--scheme", "bmes")  # B- fits, I- not
    assert r.code == 1 and re.search(r"d\.conll:\d+: tag 'I-\w+' is outside the BMES", r.err)
    bad = tmp_path / "e.conll"
    bad.write_text("Mara B-PER\nQuell E-PER\n", encoding="utf-8")
    r = cli("ner", "evaluate", ner_en_model, bad)
    assert r.code == 1 and "e.conll:2: tag 'E-PER' is outside the BIO scheme" in r.err
    assert cli("ner", "predict", ner_en_model, "--format", "xml").code == 2


def test_numpy_viterbi_follows_the_crf_layer():
    """predict without TensorFlow decodes the ONNX emissions with graphs.CRFGraph: the same
    paths as the CRF layer's Viterbi, padding included."""
    from seqkit.crf import CRF
    from seqkit.graphs import CRFGraph

    rng = np.random.default_rng(1)
    batch, time, n_tags, lengths = 6, 7, 4, [7, 3, 1, 5, 2, 6]
    emissions = rng.normal(size=(batch, time, n_tags)).astype("float32")
    tokens = np.array([[1 if t < n else 0 for t in range(time)] for n in lengths])
    crf = CRF()
    crf.build((None, None, n_tags))
    for weight in (crf.transitions, crf.start, crf.end):
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    layer = np.asarray(crf(emissions, mask=tokens != 0))  # one-hot paths

    class Emissions:  # the ONNX graph's part: emission scores for a batch
        def predict_on_batch(self, batch):
            return emissions

    numpy = CRFGraph(Emissions(), *(w.numpy() for w in (crf.transitions, crf.start, crf.end)))
    np.testing.assert_array_equal(numpy.predict_on_batch({"tokens": tokens}), layer)


@pytest.mark.parametrize("model", ["ner_en_model", "ner_zh_model"])
def test_onnx_backend_tags_as_keras_does(model, data_dir, request, cli):
    """Training writes model.onnx (and crf.npz with a CRF); both backends give the same
    tags, CRF (English) and softmax (Chinese) alike. The LSTM is ONNX's own operator."""
    import onnx as onnxlib

    path = request.getfixturevalue(model)
    data = data_dir / ("ner_en_valid.conll" if model == "ner_en_model" else "ner_zh.bmes")
    ops = {n.op_type for n in onnxlib.load(str(path / "model.onnx")).graph.node}
    assert "LSTM" in ops and "Loop" not in ops
    assert (path / "crf.npz").is_file() == (model == "ner_en_model")
    args = ("ner", "predict", path, data, "--input-format", "conll", "--format", "conll")
    onnx, keras = cli(*args, "--backend", "onnx"), cli(*args, "--backend", "keras")
    assert onnx.code == keras.code == 0 and onnx.out == keras.out and onnx.out.strip()


def test_entities_follow_seqeval():
    """schemes.entities chunks tags as seqeval's get_entities does (the scores use seqeval;
    predict does not import it): random, often ill-formed, sequences in every scheme."""
    import random

    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(0)
    for scheme, prefixes in schemes.PREFIXES.items():
        pool = ["O"] + [f"{p}-{t}" for p in prefixes for t in ("PER", "LOC")]
        for _ in range(300):
            tags = [rng.choice(pool) for _ in range(rng.randint(0, 9))]
            expected = [(kind, start, end + 1) for kind, start, end in
                        get_entities(schemes.to_conlleval(tags, scheme))]
            assert schemes.entities(tags, scheme) == expected, (scheme, tags)


# --- long lines -------------------------------------------------------------------------------
def test_windows_give_each_token_its_tag_once_with_context():
    from seqkit.tasks import ner

    assert ner.windows(5, 8) == [(0, 5, 0, 5)]
    for length, size in [(9, 8), (100, 8), (1000, 512), (1025, 512), (5000, 64)]:
        pieces = ner.windows(length, size)
        assert pieces[0][2] == 0 and pieces[-1][3] == length
        assert all(a[3] == b[2] for a, b in zip(pieces, pieces[1:]))  # no gap, no overlap
        context = min(ner.CONTEXT, size // 4)
        for start, end, keep, stop in pieces:
            assert end - start == size and start <= keep < stop <= end
            assert keep - start >= context or start == 0
            assert end - stop >= context or end == length


def test_a_line_of_thousands_of_tokens_gets_one_tag_per_token(ner_en_model):
    """Tagged in windows: as many tags as tokens, entities on the joined tags; a short line
    beside it is tagged as alone, and windows tag a line as one pass does but at a few seams."""
    from seqkit.tasks import ner

    predictor = ner.Predictor(str(ner_en_model))
    sentence = "Mara Quell visited Port Edra ."
    line = " ".join([sentence] * 600)  # 3,600 tokens, 8 windows
    [long, short] = predictor.predict([line, sentence])
    assert len(long["tokens"]) == len(long["tags"]) == 3600
    assert len(long["entities"]) >= 1000
    for e in long["entities"]:
        assert line[e["start"]:e["end"]] == e["text"]
    assert short == predictor.predict([sentence])[0]
    tokens = long["tokens"][:600]
    whole, windowed = (ner.predict_tags(predictor.model, predictor.pre, [tokens], window=w)[0]
                       for w in (1000, 64))
    assert len(windowed) == 600
    assert sum(a == b for a, b in zip(whole, windowed)) >= 0.99 * 600


def test_predict_cuts_a_line_over_the_byte_cap_and_says_so(ner_en_model, tmp_path, cli,
                                                             monkeypatch):
    from seqkit import io

    monkeypatch.setattr(io, "MAX_LINE_BYTES", 64)
    src = tmp_path / "in.txt"
    long = " ".join(["Mara Quell visited Port Edra ."] * 10)
    src.write_text(f"{long}\nTobin works for Apex .\n", encoding="utf-8")
    r = cli("ner", "predict", ner_en_model, src)
    records = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and [rec["text"] for rec in records] == [
        long.encode()[:64].decode(), "Tobin works for Apex ."]
    assert "1 line longer than 64 bytes was cut to its first 64 bytes" in r.err


def test_a_sentence_is_tagged_alike_whatever_its_batch(ner_en_model):
    """A sentence's emission scores do not change with the padding its batch adds: the
    recurrent layers see its own tokens only (Keras's Concatenate alone would let the
    character and shape features switch the token mask off), and its words' character
    features do not see the padding characters of wider words."""
    import keras

    from seqkit.batching import pad_column
    from seqkit.tasks import ner

    tagger = ner.Predictor(str(ner_en_model), backend="keras")
    emissions = keras.Model(tagger.model.inputs, tagger.model.get_layer("emissions").output)
    inputs = tagger.pre.inputs([["Mara", "Quell", "flew", "to", "Saint", "Ivra", "."]])
    alone = {k: pad_column(v, 1) for k, v in inputs.items()}
    padded = {k: np.pad(v, [(0, 0), (0, 9)] + [(0, 0)] * (v.ndim - 2))  # 9 more steps
              for k, v in alone.items()}
    wider = {k: pad_column(v, 16) for k, v in inputs.items()}  # 16 steps, 16 characters
    for batch in (padded, wider):
        np.testing.assert_allclose(emissions.predict_on_batch(alone)[0],
                                   emissions.predict_on_batch(batch)[0][:7], atol=1e-5)
