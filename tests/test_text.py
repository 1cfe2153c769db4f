import pytest

from seqkit.errors import ConfigError
from seqkit.text import Vocabulary, has_cjk, normalize, tokenize, tokenize_spans


def test_auto_splits_chinese_into_characters():
    assert tokenize("今天天气不错") == ["今", "天", "天", "气", "不", "错"]


def test_auto_splits_english_words_and_punctuation():
    assert tokenize("What a great day, isn't it?") == [
        "What", "a", "great", "day", ",", "isn't", "it", "?"]


def test_auto_mixed_text_numbers_and_lowercase():
    assert tokenize("我爱Python 3.11和NLP!", lowercase=True) == [
        "我", "爱", "python", "3.11", "和", "nlp", "!"]


def test_spans_point_back_into_the_text():
    line = "  Hello，世界 ok "
    for token, start, end in tokenize_spans(line):
        assert line[start:end] == token
    assert [t for t, _, _ in tokenize_spans(line)] == ["Hello", "，", "世", "界", "ok"]


def test_char_and_whitespace_tokenizers():
    assert tokenize("ab 中文", "char") == ["a", "b", "中", "文"]
    assert tokenize("ab,c  中文", "whitespace") == ["ab,c", "中文"]


def test_unknown_tokenizer_is_a_config_error():
    with pytest.raises(ConfigError, match="tokenizer must be one of"):
        tokenize("x", "bpe")


def test_normalize_folds_full_width_forms():
    assert normalize("ＡＢＣ１２３") == "ABC123"
    assert has_cjk("abc中") and not has_cjk("abc")


def test_vocabulary_order_min_count_and_max_size():
    vocab = Vocabulary.build([["b", "a", "a", "c"], ["a", "b"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b"]
    assert vocab.encode(["a", "zzz", "b"]) == [2, 1, 3]
    assert vocab.decode([2, 0, 3]) == ["a", "b"]
    small = Vocabulary.build([["b", "a", "a", "c"]], max_size=3)
    assert small.tokens == ["<pad>", "<unk>", "a"]


def test_vocabulary_specials_and_json_round_trip():
    vocab = Vocabulary.build([["x", "<s>"]], specials=["<s>", "</s>"])
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_vocabulary_rejects_bad_head():
    with pytest.raises(ValueError):
        Vocabulary(["a", "b"])
