"""The language model: levels, windows, the step model against the full model, perplexity
by hand, tied embeddings through save/load, generate and score through the CLI."""

import json
import math

import numpy as np
import pytest

from conftest import interrupt_after_epoch, one_error_line, run_without_tensorflow

ZH_HALVES = ["春风吹柳岸", "明月照高楼", "细雨落青苔", "白云绕远山", "江水过小桥", "归雁入寒窗"]
EN_WORDS = ["the quiet cat sleeps by the river", "a busy baker works at the market",
            "the old train waits near the station", "a happy child plays in the garden"]


def write_zh(path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    lines = [f"{ZH_HALVES[rng.integers(6)]}，{ZH_HALVES[rng.integers(6)]}。" for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_config(**changes):
    from seqkit.tasks import lm

    values = dict(units=8, embedding_dim=6, layers=2, sequence_length=8, batch_size=8,
                  epochs=2, learning_rate=0.01, seed=1, dropout=0.0)
    values.update(changes)
    return lm.Config(**values)


def tiny_pre(level="word"):
    from seqkit.tasks import lm

    stream = lm.token_stream(EN_WORDS, lambda line: lm.line_tokens(line, level))
    return lm.Preprocessor.fit(lm.Corpus(stream, level, "-"), lm.Config())


@pytest.fixture(scope="module")
def zh_model(tmp_path_factory):
    """A small character-level model trained once through the CLI.

    An epoch is one pass over the text (min_epoch_tokens=0): at the default 50,000 tokens each
    epoch would read this 3,900-token text 13 times, the model would reach the text's entropy
    within the first epoch, and later epochs would differ from it only by noise."""
    from seqkit.cli import run

    d = tmp_path_factory.mktemp("lm")
    write_zh(d / "train.txt", n=300)
    code = run(["-q", "lm", "train", str(d / "train.txt"), "-o", str(d / "model"),
                "--units", "32", "--set", "embedding_dim=16", "--epochs", "5",
                "--learning-rate", "0.02", "--sequence-length", "12", "--batch-size", "8",
                "--set", "min_epoch_tokens=0", "--seed", "3"])
    assert code == 0
    return d / "model"


# --- text -------------------------------------------------------------------------------
def test_level_auto_reads_characters_for_cjk_and_words_otherwise():
    from seqkit.tasks import lm

    assert lm.resolve_level("auto", ["春风吹柳岸，明月照高楼。"]) == "char"
    assert lm.resolve_level("auto", ["the cat sat on the mat"]) == "word"
    # one Chinese name in English text is still English
    assert lm.resolve_level("auto", ["we met 李明 at the station after a long day"]) == "word"
    assert lm.resolve_level("char", ["the cat"]) == "char"
    assert lm.line_tokens(" a b  c ", "char") == ["a", " ", "b", " ", " ", "c"]
    assert lm.line_tokens(" don't <unk> N ", "word") == ["don't", "<unk>", "N"]
    assert lm.line_tokens("Hi, you!", "word", "auto", lowercase=True) == ["hi", ",", "you", "!"]


def test_token_stream_and_vocabulary():
    from seqkit.tasks import lm

    pre = tiny_pre()
    stream = lm.token_stream(["a b", "b <unk>"], lambda line: lm.line_tokens(line, "word"))
    assert stream == ["<eos>", "a", "b", "<eos>", "b", "<unk>", "<eos>"]
    assert pre.vocab.tokens[:3] == ["<pad>", "<unk>", "<eos>"] and pre.eos_id == 2
    assert pre.encode(["<unk>", "zebra"]) == [1, 1]  # a literal <unk> is the unknown token
    assert lm.Preprocessor.from_json(json.loads(json.dumps(pre.to_json()))).vocab == pre.vocab


def test_holdout_is_the_tail_cut_at_a_line_end():
    from seqkit.tasks import lm

    stream = lm.token_stream(["a b c"] * 10, str.split)
    train, valid = lm.split_holdout(stream, 0.2)
    assert train[-1] == "<eos>" and valid[0] == "<eos>"
    assert train[:-1] + valid == stream
    assert 0 < len(valid) < len(stream) / 2
    parts = lm.split(lm.Corpus(stream, "word", "t.txt"), lm.Config(valid_fraction=0.2))
    assert [part.tokens for part in parts] == [train, valid]
    assert [part.level for part in parts] == ["word", "word"]


def test_every_text_of_a_run_is_read_at_the_trained_level(tmp_path):
    from seqkit.tasks import lm

    en = tmp_path / "en.txt"
    en.write_text("Hi, you!\n\n  the cat \n", encoding="utf-8")
    zh = lm.Source(str(write_zh(tmp_path / "zh.txt", n=3)))
    config = lm.Config(lowercase=True)
    train = lm.read(lm.Source(str(en)), config)
    assert train.level == "word"
    assert train.tokens == ["<eos>", "hi,", "you!", "<eos>", "the", "cat", "<eos>"]
    assert lm.read(zh, config).level == "char"
    # validation text is read at the training text's level, a model's data at the model's
    valid = lm.read(zh, config, reference=train)
    assert valid.level == "word" and len(valid.tokens) == 1 + 3 * 2
    pre = lm.Preprocessor.fit(lm.read(zh, config), lm.Config())
    assert lm.read(lm.Source(str(en)), config, reference=pre).tokens[:4] == [
        "<eos>", "H", "i", ","]


# --- windows ----------------------------------------------------------------------------
def test_training_windows_shift_by_one_and_move_each_epoch():
    from seqkit.batching import Windows

    stream = np.arange(103)
    w = Windows(stream, length=10, batch_size=4, shuffle=True, seed=0)
    assert w.count == 9 and len(w) == 3 and w.tokens == 90
    firsts = set()
    for epoch in range(6):
        batches = [w.make_batch(s) for s in w.batch_starts(epoch)]
        assert sum(len(x) for x, _ in batches) == 9  # the same count every epoch
        for x, y in batches:
            assert x.shape[1] == 10 and (y == x + 1).all()
            assert (np.diff(x, axis=1) == 1).all() and y.max() <= 102
        starts = sorted(int(x[0]) for b in batches for x in b[0])
        assert np.diff(starts).tolist() == [10] * 8  # non-overlapping, contiguous
        firsts.add(starts[0])
    assert len(firsts) > 1  # the cut points move between epochs


def test_a_short_stream_is_read_several_times_per_epoch():
    from seqkit.batching import Windows

    w = Windows(np.arange(103), length=10, batch_size=4, shuffle=True, seed=0, min_tokens=250)
    assert w.passes == 3 and w.tokens == 270 and len(w) == 7  # 27 windows of 10
    starts = np.concatenate(w.batch_starts(0))
    assert len(starts) == 27
    for one_pass in starts.reshape(3, 9):  # each pass: the 9 contiguous windows at an offset
        ordered = np.sort(one_pass)
        assert np.diff(ordered).tolist() == [10] * 8 and ordered[-1] + 10 <= 102
    assert len({int(np.sort(p)[0]) for p in starts.reshape(3, 9)}) > 1
    # a long enough stream, or validation, is read once
    assert Windows(np.arange(103), 10, 4, min_tokens=50).passes == 1
    assert Windows(np.arange(103), 10, 4, shuffle=False, min_tokens=250).passes == 1


def test_contiguous_windows_continue_each_row_from_batch_to_batch():
    """Stateful training: row r of each batch starts where row r of the batch before ended,
    every batch has the same rows, and each pass starts at a new offset."""
    from seqkit.batching import Windows

    w = Windows(np.arange(1001), length=10, batch_size=4, shuffle=True, seed=0,
                contiguous=True)
    assert (w.rows, w.row_span, w.count) == (4, 250, 24) and len(w) == 24
    assert w.tokens == 24 * 10 * 4
    firsts = set()
    for epoch in range(4):
        batches = [w.make_batch(s) for s in w.batch_starts(epoch)]
        assert len(batches) == len(w) and all(x.shape == (4, 10) for x, _ in batches)
        for (x0, _), (x1, _) in zip(batches, batches[1:]):
            assert (x1[:, 0] == x0[:, -1] + 1).all()  # each row goes on
        for x, y in batches:
            assert (y == x + 1).all()
            assert (x // 250 == np.arange(4)[:, None]).all()  # a row stays in its quarter
        firsts.add(int(batches[0][0][0, 0]))
    assert len(firsts) > 1
    # validation: in order from the start; a stream short of rows x length shortens windows
    valid = Windows(np.arange(101), length=10, batch_size=4, shuffle=False, contiguous=True)
    assert [s.tolist() for s in valid.batch_starts(0)][:2] == [[0, 25, 50, 75],
                                                                [10, 35, 60, 85]]
    short = Windows(np.arange(13), length=10, batch_size=4, shuffle=False, contiguous=True)
    (x, y), = [short.make_batch(s) for s in short.batch_starts(0)]
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    # a short training text read several times: still whole rows every batch (rows of 25
    # tokens hold one window of 10 at any offset up to 9: 40 tokens a pass)
    again = Windows(np.arange(101), 10, 4, seed=0, min_tokens=500, contiguous=True)
    assert again.passes == 13 and len(again) == 13
    assert all(len(s) == 4 for s in again.batch_starts(0))


def test_validation_windows_run_in_order_and_tiny_streams_make_one_window():
    from seqkit.batching import Windows

    w = Windows(np.arange(41), length=10, batch_size=3, shuffle=False)
    x = np.concatenate([w.make_batch(s)[0] for s in w.batch_starts(0)])
    assert x[:, 0].tolist() == [0, 10, 20, 30]
    short = Windows(np.arange(5), length=10, batch_size=3)
    (xs, ys), = [short.make_batch(s) for s in short.batch_starts(0)]
    assert xs.tolist() == [[0, 1, 2, 3]] and ys.tolist() == [[1, 2, 3, 4]]
    ds = list(short.dataset())
    assert len(ds) == 1


# --- model ------------------------------------------------------------------------------
def log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("cell, tie", [("lstm", True), ("gru", False)])
def test_step_model_gives_the_full_models_distribution(cell, tie):
    """Feeding one token at a time through the step model, states carried, must give the
    same next-token distributions as the full model over the whole sequence."""
    from seqkit.tasks import lm
    from seqkit.training import set_seed

    set_seed(0)
    pre = tiny_pre()
    config = tiny_config(cell=cell, tie_embeddings=tie)
    model = lm.build_model(config, pre)
    ids = np.array([[2, 3, 5, 4, 7, 6, 3, 2, 8]], dtype=np.int32)
    expected = log_softmax(model.predict_on_batch(ids))[0]
    stepper = lm.Stepper(model, config)
    states = stepper.zero_states(1)
    for t in range(ids.shape[1]):
        log_probs, states = stepper.step(ids[:, t], states)
        np.testing.assert_allclose(log_probs[0], expected[t], atol=2e-5)
    # and a whole window at once, from the states after the first three tokens
    _, states = stepper(ids[:, :3], stepper.zero_states(1))
    rest, _ = stepper(ids[:, 3:], states)
    np.testing.assert_allclose(rest[0], expected[3:], atol=2e-5)


def test_stateful_model_carries_its_states_until_reset_and_finishes_stateless():
    """With `rows`, each call starts from the states the last one ended with: two halves of
    a sequence give the whole sequence's outputs; the reset callback starts from zero; the
    finished model (without_states) has the same weights and no state."""
    from seqkit import language_model
    from seqkit.tasks import lm
    from seqkit.training import set_seed

    set_seed(0)
    pre, config = tiny_pre(), tiny_config(stateful=True)
    model = lm.build_model(config, pre, rows=2)
    ids = np.array([[2, 3, 5, 4, 7, 6, 3, 2], [8, 4, 4, 3, 2, 6, 5, 7]], dtype=np.int32)
    plain = language_model.without_states(model, config, pre)
    assert not any(getattr(layer, "stateful", False) for layer in plain.layers)
    whole = plain.predict_on_batch(ids)
    first, second = model.predict_on_batch(ids[:, :4]), model.predict_on_batch(ids[:, 4:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-5)
    callback = language_model.reset_states(model)
    callback.on_epoch_begin(0)
    np.testing.assert_allclose(model.predict_on_batch(ids[:, 4:]), plain.predict_on_batch(
        ids[:, 4:]), atol=1e-5)
    model.predict_on_batch(ids[:, :4])
    callback.on_test_begin()
    np.testing.assert_allclose(model.predict_on_batch(ids[:, :4]), first, atol=1e-5)


def test_stateful_training_end_to_end(tmp_path, cli, capsys):
    """`stateful = true` trains on contiguous rows and saves the usual stateless model (one
    row here: the batches' shape must hold the states' fixed batch size, or a state of
    shape (1, units) would broadcast to (None, units) in the loop); under a tf.distribute
    strategy, or on a short text, it trains from zero states, with a warning."""
    import tensorflow as tf

    from seqkit import artifacts, language_model
    from seqkit.tasks import lm

    text = tmp_path / "t.txt"
    text.write_text("\n".join(EN_WORDS * 30) + "\n", encoding="utf-8")
    result = cli("lm", "train", str(text), "-o", str(tmp_path / "m"), "--units", "8",
                 "--set", "embedding_dim=6", "--epochs", "1", "--sequence-length", "8",
                 "--batch-size", "1", "--set", "min_epoch_tokens=0", "--set", "stateful=true")
    assert result.code == 0, result.err
    loaded = artifacts.load(tmp_path / "m", "lm", lm.Config, backend="keras")
    assert loaded.config.stateful
    assert not any(getattr(layer, "stateful", False) for layer in loaded.model.layers)
    result = cli("lm", "evaluate", str(tmp_path / "m"), str(text), "--json")
    assert result.code == 0 and json.loads(result.out)["perplexity"] > 1
    capsys.readouterr()
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert language_model.stateful_rows(tiny_config(stateful=True), list(range(100)),
                                            list(range(20))) is None
    assert "stateful is not used with --distribute" in capsys.readouterr().err
    # rows of the batch size, or none: a text shorter than batch_size x sequence_length
    # (8 x 8 here), or a validation text of batch_size tokens or fewer, trains stateless
    stateful = tiny_config(stateful=True)
    assert language_model.stateful_rows(stateful, list(range(65)), list(range(9))) == 8
    for train, valid in ((64, 9), (65, 8)):
        assert language_model.stateful_rows(stateful, list(range(train)),
                                            list(range(valid))) is None
        assert "stateful is not used: it needs more than 64" in capsys.readouterr().err


def test_a_killed_stateful_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Each epoch starts from zero states, so a run resumed after epoch 1 ends as the
    uninterrupted run does, bit for bit (dropout on: random masks every step)."""
    from seqkit import artifacts, lifecycle
    from seqkit.tasks import lm

    text = tmp_path / "t.txt"
    text.write_text("\n".join(EN_WORDS * 12) + "\n", encoding="utf-8")
    config = tiny_config(stateful=True, epochs=3, dropout=0.2, batch_size=4,
                         min_epoch_tokens=0, level="word")
    source = lm.Source(str(text))
    lifecycle.train(lm, source, tmp_path / "straight", config, tensorboard=False)
    undo = interrupt_after_epoch(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.train(lm, source, tmp_path / "resumed", config, tensorboard=False)
    undo()
    lifecycle.train(lm, source, tmp_path / "resumed", config, resume=True, tensorboard=False)
    weights = [artifacts.load(tmp_path / name, "lm", lm.Config, backend="keras").model
               .get_weights() for name in ("straight", "resumed")]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_perplexity_is_exp_of_the_mean_loss_by_hand():
    from seqkit.tasks import lm
    from seqkit.training import set_seed

    set_seed(1)
    pre = tiny_pre("char")
    config = tiny_config()
    model = lm.build_model(config, pre)
    rng = np.random.default_rng(0)
    ids = rng.integers(2, len(pre.vocab), size=70).astype(np.int32)
    by_hand = log_softmax(model.predict_on_batch(ids[None, :-1]))[0]
    nll = -by_hand[np.arange(69), ids[1:]].mean()
    scores = lm.stream_scores(lm.Stepper(model, config), ids, "char", rows=1, window=16)
    assert scores["tokens"] == 69
    assert scores["loss"] == pytest.approx(nll, rel=1e-5)
    assert scores["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)
    assert scores["bits_per_character"] == pytest.approx(nll / math.log(2), rel=1e-5)
    # side by side rows cover every token once too
    assert lm.stream_scores(lm.Stepper(model, config), ids, "word", rows=4)["tokens"] == 69
    # score: validation runs batch_size parts; evaluate its own count, and names the level
    corpus = lm.Corpus([pre.vocab.tokens[i] for i in ids], "char", "-")
    stepper = lm.Stepper(model, config)
    assert lm.score(model, config, pre, corpus) == lm.stream_scores(stepper, ids, "char",
                                                                    rows=config.batch_size)
    assert lm.score(model, config, pre, corpus, batch_size=4) == {
        "level": "char", **lm.stream_scores(stepper, ids, "char", rows=4)}


def test_tied_embeddings_survive_safe_mode_save_and_load(tmp_path):
    import keras

    from seqkit.tasks import lm

    pre = tiny_pre()
    model = lm.build_model(tiny_config(tie_embeddings=True), pre)
    vocab_sized = [w for w in model.weights if len(pre.vocab) in w.shape]
    assert len(vocab_sized) == 1  # one matrix, used both ways
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    ids = np.array([[2, 3, 4, 5]], dtype=np.int32)
    np.testing.assert_allclose(model.predict_on_batch(ids), loaded.predict_on_batch(ids),
                               rtol=1e-6)
    assert len([w for w in loaded.weights if len(pre.vocab) in w.shape]) == 1


def test_bidirectional_is_refused(cli, tmp_path):
    r = cli("lm", "train", write_zh(tmp_path / "t.txt"), "-o", tmp_path / "m",
            "--bidirectional")
    assert r.code == 1 and "bidirectional must be false" in r.err


def test_the_recipe_follows_the_level_the_text_was_read_at(cli, tmp_path):
    """level auto reads the Chinese text as characters and the English as words; each
    run takes that level's defaults (tasks/lm.toml's [char] and [word]) for every key the
    command line left unset, and config.toml writes down the level and the values used."""
    from seqkit import config as configlib
    from seqkit.tasks import lm

    english = tmp_path / "en.txt"
    english.write_text("\n".join(EN_WORDS * 10) + "\n", encoding="utf-8")
    for name, text, level in [("zh", write_zh(tmp_path / "zh.txt", n=40), "char"),
                              ("en", english, "word")]:
        r = cli("lm", "train", text, "-o", tmp_path / name, "--units", "8", "--epochs", "1",
                "--set", "embedding_dim=6", "--set", "min_epoch_tokens=0")
        assert r.code == 0, r.err
        saved = configlib.resolve(lm.Config, tmp_path / name / "config.toml", task="lm")
        assert saved.level == level and (saved.units, saved.embedding_dim) == (8, 6)
        for key, value in lm.Config.VARIANTS[level].items():
            if key not in ("units", "embedding_dim"):
                assert getattr(saved, key) == value, key
    assert lm.CHAR["sequence_length"] != lm.WORD["sequence_length"]  # the test tells them apart


# --- the command line -------------------------------------------------------------------
def test_training_learns_and_evaluate_reports_perplexity(zh_model, tmp_path, cli):
    metrics = json.loads((zh_model / "metrics.json").read_text())
    history = [epoch["val_loss"] for epoch in metrics["training"]["history"]]
    # write_zh's lines are two halves drawn from six, each fixed by its first character:
    # 2 ln 6 nats of choice in 13 tokens is the lowest loss any model can reach on average
    floor = 2 * math.log(6) / 13
    # seeds 0-4 on this recipe: the excess over the floor falls to 0.13-0.35 of its first
    # epoch's value (first epochs 1.7-2.4 nats, last 0.42-0.90)
    assert len(history) == 5
    assert history[-1] - floor < 0.5 * (history[0] - floor)
    test = write_zh(tmp_path / "test.txt", n=20, seed=9)
    r = cli("lm", "evaluate", zh_model, test, "--json")
    result = json.loads(r.out)
    assert r.code == 0 and result["level"] == "char"
    assert result["tokens"] == 20 * 13  # 12 characters and the end of each line
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]), rel=1e-6)
    assert result["perplexity"] < 8  # of 35 tokens: it has learnt much of the shape
    r = cli("lm", "evaluate", zh_model, test)
    assert r.code == 0 and r.out.startswith("perplexity") and "bits_per_character" in r.out


def test_generate_is_reproducible_with_a_seed(zh_model, cli):
    args = ("lm", "generate", zh_model, "--prompt", "春风", "-n", "24", "--seed", "5")
    first, again = cli(*args), cli(*args)
    assert first.code == 0 and first.out == again.out and first.out.startswith("春风")
    other = cli("lm", "generate", zh_model, "--prompt", "春风", "-n", "24", "--seed", "6")
    assert other.out != first.out
    many = cli("lm", "generate", zh_model, "-n", "13", "--seed", "5", "--count", "3",
               "--temperature", "0.5", "--top-k", "5")
    assert many.code == 0 and many.out.count("\n\n") == 2


def test_generate_streams_one_piece_per_token(zh_model):
    from seqkit.tasks import lm

    model = lm.Predictor(str(zh_model))
    calls = []
    step = model.stepper.step
    model.stepper.step = lambda tokens, states: calls.append(1) or step(tokens, states)
    pieces = model.generate("明月", 50, rng=np.random.default_rng(0))
    assert next(pieces) == "明月" and not calls
    next(pieces)
    next(pieces)
    assert len(calls) == 2  # a token is handed out as soon as it is drawn
    assert len(list(pieces)) == 48


def test_score_lines_up_with_input(zh_model, tmp_path, cli):
    src = tmp_path / "in.txt"
    src.write_text("春风吹柳岸，明月照高楼。\n\n风春岸柳吹，楼高照月明。\n   \n", encoding="utf-8")
    r = cli("lm", "score", zh_model, src)
    records = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and len(records) == 4
    assert [rec["text"] for rec in records] == ["春风吹柳岸，明月照高楼。", "",
                                                "风春岸柳吹，楼高照月明。", "   "]
    assert records[1] == {"text": "", "tokens": 0, "log_prob": None, "perplexity": None}
    assert records[3]["log_prob"] is None
    good, shuffled = records[0], records[2]
    assert good["tokens"] == 13 and good["log_prob"] > shuffled["log_prob"]
    assert good["perplexity"] == pytest.approx(math.exp(-good["log_prob"] / 13), rel=1e-3)
    r = cli("lm", "score", zh_model, src, "--format", "tsv")
    rows = [line.split("\t") for line in r.out.split("\n")[:-1]]
    assert len(rows) == 4 and all(len(row) == 4 for row in rows)
    assert rows[1] == ["", "", "0", ""] and rows[0][3] == "春风吹柳岸，明月照高楼。"


def test_score_reads_stdin(zh_model, cli, monkeypatch):
    import io

    data = "春风吹柳岸，明月照高楼。\n白云\n".encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    r = cli("lm", "score", zh_model, "-", "--format", "tsv")
    assert r.code == 0 and [row.split("\t")[3] for row in r.out.splitlines()] == [
        "春风吹柳岸，明月照高楼。", "白云"]


@pytest.mark.parametrize("content, expected", [
    (b"", "bad.txt: file is empty"),
    (b"\n  \n", "bad.txt: file is empty"),
    (b"fine text\nmore text\n\xff\xfe bad\n", "bad.txt:3: bytes"),
])
def test_bad_training_text(content, expected, tmp_path, cli):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    assert expected in one_error_line(cli("lm", "train", bad, "-o", tmp_path / "m"))
    assert not (tmp_path / "m").exists()


def test_bad_text_at_evaluate_and_score(zh_model, tmp_path, cli):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("春风\n明月\n".encode() + b"\xff bad\n")
    assert "bad.txt:3: bytes" in one_error_line(cli("lm", "evaluate", zh_model, bad))
    assert "bad.txt:3: bytes" in one_error_line(cli("lm", "score", zh_model, bad))
    assert "this is a 'lm' model" in one_error_line(
        cli("sentiment", "predict", zh_model, bad))


def test_onnx_backend_generates_and_scores_as_keras_does(zh_model, tmp_path, cli):
    """Training writes the step model as model.onnx; generate, score and evaluate run it on
    ONNX Runtime without TensorFlow, with Keras's text for a seed and its log-probabilities."""

    assert (zh_model / "model.onnx").is_file()
    generate = ("lm", "generate", zh_model, "--prompt", "春风", "-n", "24", "--seed", "5")
    onnx_text = cli(*generate, "--backend", "onnx")
    assert onnx_text.code == 0 and onnx_text.out == cli(*generate, "--backend", "keras").out
    text = write_zh(tmp_path / "t.txt", n=10, seed=4)
    scores = {b: [json.loads(line) for line in
                  cli("lm", "score", zh_model, text, "--backend", b).out.splitlines()]
              for b in ("onnx", "keras")}
    assert len(scores["onnx"]) == len(scores["keras"]) == 10
    for a, b in zip(scores["onnx"], scores["keras"]):
        assert a["tokens"] == b["tokens"] and abs(a["log_prob"] - b["log_prob"]) <= 1e-4
    evaluated = {b: json.loads(cli("lm", "evaluate", zh_model, text, "--json", "--backend",
                                   b).out) for b in ("onnx", "keras")}
    assert evaluated["onnx"]["perplexity"] == pytest.approx(evaluated["keras"]["perplexity"],
                                                            rel=1e-5)
    run_without_tensorflow("lm", "generate", zh_model, "-n", "5", "--seed", "1")


def test_score_of_a_long_line_is_finite_and_that_of_one_pass(zh_model, tmp_path, cli,
                                                             monkeypatch):
    """A long line is scored 50 tokens at a time with the states carried over: the score
    of one pass over the line, with no effect on the short lines of its batch. A line over
    the byte cap is scored as cut, with a warning, and the next line as it is."""
    from seqkit import io
    from seqkit.tasks import lm

    predictor = lm.Predictor(str(zh_model))
    short = "春风吹柳岸，明月照高楼。"
    [long, alone] = predictor.predict([short * 400, short])  # 4,801 steps, 97 windows
    assert long["tokens"] == 4801 and math.isfinite(long["log_prob"])
    assert alone == predictor.predict([short])[0]
    eos = predictor.pre.eos_id
    ids = np.array([[eos, *predictor.pre.encode_line(short * 400), eos]])
    one_pass = predictor.stepper.target_log_probs(ids[:, :-1], ids[:, 1:], window=10_000)
    assert long["log_prob"] == pytest.approx(one_pass.sum(), rel=1e-5)

    monkeypatch.setattr(io, "MAX_LINE_BYTES", 40)  # 13 characters of 3 bytes
    src = tmp_path / "in.txt"
    src.write_text(short * 3 + "\n" + short + "\n", encoding="utf-8")
    r = cli("lm", "score", zh_model, src)
    records = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and [rec["text"] for rec in records] == [(short * 2)[:13], short]
    assert records[1] == alone and "1 line longer than 40 bytes was cut" in r.err
