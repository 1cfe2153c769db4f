"""Sentiment preprocessing: what is cut while training and what is kept at inference."""

from seqkit.tasks.sentiment import INFERENCE_STRETCH, Config, Labelled, Preprocessor


def fitted(texts, labels, **changes):
    data = Labelled(texts, labels, list(range(2, len(texts) + 2)), "train.csv")
    return Preprocessor.fit(data, Config(**changes))


def test_training_cuts_at_max_length_but_inference_reads_further():
    pre = fitted(["good film", "bad film", "fine"], ["pos", "neg", "pos"], max_length=2)
    long_text = " ".join(["good"] * 50)
    assert len(pre.encode([long_text], training=True)["tokens"][0]) == 2
    # the label of a long test text may sit past the training cut: inference keeps more
    assert len(pre.encode([long_text])["tokens"][0]) == 2 * INFERENCE_STRETCH


def test_max_length_defaults_to_a_percentile_of_training_lengths():
    texts = ["a"] * 9 + [" ".join(["a"] * 40)]
    pre = fitted(texts, ["x"] * 5 + ["y"] * 5, length_percentile=90)
    assert pre.max_length < 40  # the one long outlier does not set the training length
    assert pre.max_length >= 1


def test_labels_sort_numerically_when_they_are_integers():
    pre = fitted(["a", "b", "c"], ["10", "2", "1"])
    assert pre.labels == ["1", "2", "10"]


def test_chinese_text_gets_bigram_features_aligned_with_its_characters():
    zh = fitted(["房间很干净", "房间很脏", "服务很好", "服务很差"], ["1", "0", "1", "0"],
                bigram_min_count=1, bigrams="auto")
    en = fitted(["a clean room", "a dirty room"], ["1", "0"], bigrams="auto")
    assert zh.bigrams is not None and en.bigrams is None  # auto: on for CJK text only
    inputs = zh.encode(["房间很好"])
    assert len(inputs["bigrams"][0]) == len(inputs["tokens"][0]) == 4
    assert inputs["bigrams"][0][:2] == zh.bigrams.encode(["房 间", "间 很"])
    assert inputs["bigrams"][0][3] == zh.bigrams.encode(["好 </s>"])[0] != 1  # seen in 服务很好
    again = Preprocessor.from_json(zh.to_json())
    assert again.encode(["房间很好"]) == inputs


def test_max_minutes_stops_after_the_epoch_that_passes_it(data_dir, tmp_path, cli):
    import json

    from conftest import TINY

    out = tmp_path / "timed"
    result = cli("sentiment", "train", str(data_dir / "train.csv"), "-o", str(out),
                 "--epochs", "5", "--max-minutes", "0.0001", *TINY)
    assert result.code == 0
    summary = json.loads((out / "metrics.json").read_text())["training"]
    assert len(summary["history"]) == 1
    assert "--max-minutes" in cli("sentiment", "train", "--help").out
