"""The tagger (seqkit.tasks.ner) from token to tag scores: word features and the network.

Word features: a token's vocabulary entry (its word key: NFKC, lowercased if set, every
digit 0), its shape (the casing that the lowercased key hides), whether a corpus is
character-level (Chinese), and pretrained word vectors, read once and laid out as the
embedding layer's initial weights. The network embeds them (word ids, a character CNN,
token bigrams, shapes), runs the recurrent backbone and scores each tag per token; a CRF
(seqkit.crf) or a softmax reads the scores. Keras is imported by the network's functions
only, so the word features stay pure Python and NumPy.

    inputs -> embeddings (+ char CNN, bigrams, shapes) -> backbone -> emissions -> CRF
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from seqkit import corpora, text

if TYPE_CHECKING:
    import keras

log = logging.getLogger("seqkit")
_DIGIT = re.compile(r"\d")

# Word shapes: what lowercasing the word ids hides (0 is padding).
SHAPES = ("<pad>", "lower", "Capitalised", "UPPER", "mIxed", "digits", "has digit", "other")


def word_key(token: str, lowercase: bool) -> str:
    """The vocabulary entry of a token: NFKC, lowercased (if set), every digit 0."""
    token = text.normalize(token)
    return _DIGIT.sub("0", token.lower() if lowercase else token)


def word_shape(token: str) -> int:
    """The index in SHAPES of a token's casing class."""
    # cached, as words repeat; not a long token, which the cache would keep alive
    return _cached_shape(token) if len(token) <= 64 else _shape(token)


def _shape(token: str) -> int:
    if token.isdigit():
        return 5
    if any(ch.isdigit() for ch in token):
        return 6
    letters = [ch for ch in token if ch.isalpha()]
    if not letters:
        return 7
    if all(ch.islower() for ch in letters):
        return 1
    if all(ch.isupper() for ch in letters):
        return 3
    if letters[0].isupper() and all(ch.islower() for ch in letters[1:]):
        return 2
    return 4


_cached_shape = functools.lru_cache(maxsize=65536)(_shape)


def is_char_level(token_lists: Iterable[Sequence[str]]) -> bool:
    """Whether tokens are single characters (Chinese corpora), judged on 90% of them."""
    lengths = [len(tok) for toks in token_lists for tok in toks]
    return bool(lengths) and sum(n == 1 for n in lengths) >= 0.9 * len(lengths)


def pretrained_vectors(path: str, token_lists: Sequence[Sequence[str]], lowercase: bool,
                       max_vocab: int) -> tuple[list[str], np.ndarray]:
    """(words, matrix) of a vectors file; the first max_vocab words, plus any word in
    the training data."""
    seen = {word_key(t, lowercase) for toks in token_lists for t in toks}
    count = {"n": 0}

    def keep(word: str) -> bool:
        count["n"] += 1
        return count["n"] <= max_vocab or word in seen

    words, matrix = corpora.read_vectors(path, keep=keep)
    log.info("pretrained vectors: %s words of dimension %d from %s", f"{len(words):,}",
             matrix.shape[1], path)
    return words, matrix


def embedding_matrix(vocab: text.Vocabulary, lowercase: bool, words: Sequence[str],
                     matrix: np.ndarray, seed: int) -> np.ndarray:
    """Vocabulary-sized weights: pretrained rows where the word has one, small random
    rows elsewhere, zeros for padding."""
    rng = np.random.default_rng(seed)
    scale = float(matrix.std()) if matrix.size else 0.1
    out = rng.normal(0.0, scale, (len(vocab), matrix.shape[1])).astype(np.float32)
    out[vocab.pad_id] = 0.0
    rows = {w: i for i, w in enumerate(words)}
    found = 0
    for i, key in enumerate(vocab.tokens):
        j = rows.get(key)
        if j is None and lowercase is False:
            j = rows.get(key.lower())
        if j is not None:
            out[i] = matrix[j]
            found += 1
    log.info("pretrained vectors cover %s of %s vocabulary words", f"{found:,}",
             f"{len(vocab):,}")
    return out


# The network ---------------------------------------------------------------------------------
def build_network(config, pre):
    """The shared graph of a ner Config and Preprocessor: (inputs dict, emissions
    (batch, time, tags))."""
    import keras

    from seqkit.backbones import (BackboneSpec, CharPool, TokenConcatenate, ZeroPadded,
                                  apply_backbone)

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")  # (batch, time)
    inputs = {"tokens": tokens}
    x = keras.layers.Embedding(len(pre.vocab), config.embedding_dim, mask_zero=True,
                               name="embedding")(tokens)  # (batch, time, dim)
    if pre.chars is not None:
        chars = keras.Input(shape=(None, None), dtype="int32", name="chars")  # (b, t, c)
        inputs["chars"] = chars
        c = keras.layers.Embedding(len(pre.chars), config.char_embedding_dim,
                                   name="char_embedding")(chars)  # (b, t, c, cdim)
        c = ZeroPadded(name="char_padding")([c, chars])
        if config.char_dropout > 0:
            c = keras.layers.Dropout(config.char_dropout, name="char_dropout")(c)
        c = keras.layers.Conv2D(config.char_filters, (1, config.char_width), padding="same",
                                activation="tanh", name="char_cnn")(c)  # (b, t, c, filters)
        c = CharPool(name="char_pool")([c, chars])  # (batch, time, filters)
        x = TokenConcatenate(name="word_features")([x, c])
    if pre.bigrams is not None:
        bigrams = keras.Input(shape=(None,), dtype="int32", name="bigrams")  # (batch, time)
        inputs["bigrams"] = bigrams
        b = keras.layers.Embedding(len(pre.bigrams), config.bigram_embedding_dim,
                                   name="bigram_embedding")(bigrams)  # (batch, time, bdim)
        x = TokenConcatenate(name="token_features")([x, b])
    if pre.shapes:
        shapes = keras.Input(shape=(None,), dtype="int32", name="shapes")  # (batch, time)
        inputs["shapes"] = shapes
        s = keras.layers.Embedding(len(SHAPES), config.case_embedding_dim,
                                   name="shape_embedding")(shapes)  # (batch, time, sdim)
        x = TokenConcatenate(name="shape_features")([x, s])
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    x, _ = apply_backbone(x, BackboneSpec.from_config(config), return_sequences=True)
    emissions = keras.layers.Dense(len(pre.tags), name="emissions")(x)  # (b, t, tags)
    return inputs, emissions


def build_model(config, pre) -> keras.Model:
    """The inference model: per-token tag scores (batch, time, tags); argmax gives the tag
    (softmax probabilities, or the CRF's Viterbi path one-hot)."""
    import keras

    from seqkit.crf import CRF

    inputs, emissions = build_network(config, pre)
    if config.crf:
        # float32 even under mixed precision: the log-sum-exp over paths needs its range
        out = CRF(name="crf", dtype="float32")(emissions, mask=real_tokens(inputs["tokens"]))
    else:
        out = keras.layers.Activation("softmax", name="tag_probs")(emissions)
    return keras.Model(inputs, out, name="ner")


def training_model(model: keras.Model) -> keras.Model:
    """What `fit` trains. A CRF model also takes the gold tags (the CRF adds its NLL as the
    loss); otherwise the inference model itself, with a masked cross-entropy."""
    import keras

    if not has_crf(model):
        return model
    inputs = {name: model.get_layer(name).output for name in input_names(model)}
    tags = keras.Input(shape=(None,), dtype="int32", name="tags")
    emissions = model.get_layer("emissions").output
    out = model.get_layer("crf")(emissions, tags=tags, mask=real_tokens(inputs["tokens"]))
    return keras.Model({**inputs, "tags": tags}, out, name="ner_training")


def inference_model(trained: keras.Model) -> keras.Model:
    """The inference model rebuilt from a training model's named layers (shared weights)."""
    import keras

    if not has_crf(trained) or "tags" not in input_names(trained):
        return trained
    inputs = {name: trained.get_layer(name).output for name in input_names(trained)
              if name != "tags"}
    out = trained.get_layer("crf")(trained.get_layer("emissions").output,
                                   mask=real_tokens(inputs["tokens"]))
    return keras.Model(inputs, out, name="ner")


def real_tokens(tokens):
    """The gold padding mask: True where a token id is not padding (0)."""
    from keras import ops

    return ops.not_equal(tokens, 0)


def has_crf(model: keras.Model) -> bool:
    return any(layer.name == "crf" for layer in model.layers)


def input_names(model: keras.Model) -> list[str]:
    return [t.name for t in model.inputs]


def export(model: keras.Model, config, pre, directory) -> Path:
    """The tagger's graphs for predict without TensorFlow (seqkit.graphs): the network up to
    the emission scores as model.onnx, and with a CRF its scores as crf.npz (Viterbi runs in
    NumPy); without a CRF the whole softmax model."""
    import keras

    from seqkit import graphs
    from seqkit.batching import pad_column

    directory = Path(directory)
    sample = {name: pad_column(column) for name, column in pre.inputs([["a"]]).items()}
    if has_crf(model):
        crf = model.get_layer("crf")
        graphs.save_crf(directory / graphs.CRF_FILE, *(np.asarray(w) for w in (
            crf.transitions, crf.start, crf.end)))
        model = keras.Model(model.inputs, model.get_layer("emissions").output)
    else:
        (directory / graphs.CRF_FILE).unlink(missing_ok=True)
    return graphs.export(model, directory / graphs.GRAPH_FILE, sample, fused_rnn=True)
