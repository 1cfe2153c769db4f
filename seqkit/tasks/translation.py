"""Translation, many-to-many not aligned: an RNN encoder-decoder with attention.

Data: TSV lines `source<TAB>target` (further columns, such as an attribution, are ignored;
a UTF-8 BOM is fine), or two line-aligned files (--source-file / --target-file);
--reverse swaps the direction. Each side has its own tokenizer (auto, char, whitespace,
or sentencepiece subwords trained on the training data) and vocabulary.

    seqkit translation train data/translation_en_zh.tsv -o runs/mt
    echo "I like tea." | seqkit translation predict runs/mt --beam-size 5
"""

from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from seqkit import artifacts, choices, config as configlib, corpora, decoding, io, metrics
from seqkit import progress
from seqkit.batching import Batches
from seqkit.errors import ConfigError
from seqkit.text import Side

if TYPE_CHECKING:
    import keras

    from seqkit import seq2seq
    from seqkit.lifecycle import Plan

NAME = "translation"
BOS, EOS = "<s>", "</s>"
DECODE_BATCH = 64  # sentences decoded together (evaluate's and predict's --batch-size)
log = logging.getLogger("seqkit")


# 1. Config ---------------------------------------------------------------------------------
@dataclass
class Config(configlib.Recipe):
    # shared keys (seqkit.config) whose default differs here
    cell: str = "gru"
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.002
    # this task's own keys
    source_tokenizer: str = "auto"
    target_tokenizer: str = "auto"
    vocab_size: int = 8000  # sentencepiece pieces per side
    lowercase_source: bool = True
    min_count: int = 1
    max_vocab: int = 30000
    max_length: int = 0  # tokens kept per side; 0: the length_percentile of each side
    length_percentile: float = 99.0
    valid_fraction: float = 0.05  # held out when no --valid is given
    embedding_dim: int = 128
    attention: str = "luong"
    attention_units: int = 256  # bahdanau's hidden size
    beam_size: int = 5  # default for evaluate and predict; 1 is greedy
    length_alpha: float = 0.6
    max_output_length: int = 0  # 0: twice the target max_length

    def validate(self) -> None:
        for side in ("source_tokenizer", "target_tokenizer"):
            configlib.check_choice(side, getattr(self, side), choices.SIDE_TOKENIZERS)
        configlib.check_choice("attention", self.attention, choices.ATTENTIONS)
        configlib.check_range("length_percentile", self.length_percentile, 50, 100)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.001, 0.5)
        if min(self.embedding_dim, self.attention_units, self.beam_size, self.vocab_size) < 1 \
                or min(self.max_length, self.max_output_length) < 0:
            raise ConfigError("embedding_dim, attention_units, beam_size and vocab_size must "
                              "be >= 1; max_length and max_output_length >= 0")
        super().validate()


# 2. Data -----------------------------------------------------------------------------------
@dataclass
class Source:
    """Where sentence pairs come from: a TSV, or two line-aligned files."""
    path: str | None = None
    source_file: str | None = None
    target_file: str | None = None
    reverse: bool | None = None  # None: as the model was trained (False when training)
    skip_bad_lines: bool = False
    encoding: str | None = None


@dataclass
class Pairs(corpora.Pairs):
    """Sentence pairs and the direction they were read in (the Preprocessor keeps it)."""
    reverse: bool = False

    def take(self, index: Sequence[int]) -> "Pairs":
        return Pairs([self.sources[i] for i in index], [self.targets[i] for i in index],
                     [self.lines[i] for i in index], reverse=self.reverse)


def read(source: Source, config: Config, reference=None) -> Pairs:
    """The pairs of `source`; a direction left open (reverse None) is the reference's: the
    training Pairs when reading validation data, the model's Preprocessor when evaluating."""
    reverse = source.reverse if source.reverse is not None else \
        bool(getattr(reference, "reverse", False))
    options = {"reverse": reverse, "skip_bad_lines": source.skip_bad_lines,
               "encoding": source.encoding}
    if source.path is not None and (source.source_file or source.target_file):
        raise ConfigError("give either a TSV file or --source-file and --target-file, "
                          "not both")
    if source.path is not None:
        pairs = corpora.read_pairs(source.path, **options)
    elif source.source_file and source.target_file:
        pairs = corpora.read_parallel(source.source_file, source.target_file, **options)
    else:
        raise ConfigError("no data: give a TSV file (source<TAB>target), or both "
                          "--source-file and --target-file")
    return Pairs(pairs.sources, pairs.targets, pairs.lines, pairs.skipped, reverse)


def split(data: Pairs, config: Config) -> tuple[Pairs, Pairs]:
    """A random hold-out of valid_fraction of the pairs (at least one)."""
    order = np.random.default_rng(config.seed).permutation(len(data.sources))
    cut = max(1, int(round(len(order) * config.valid_fraction)))
    if cut >= len(order):
        raise ConfigError(f"{len(order)} pairs are too few to hold some out for validation; "
                          "give --valid")
    log.info("no --valid given: holding out %s of %s pairs", f"{cut:,}", f"{len(order):,}")
    return data.take(order[cut:]), data.take(order[:cut])


# 3. Preprocessor ---------------------------------------------------------------------------
class Preprocessor:
    """Sentences <-> token ids for both sides. Pure Python; saved as JSON.

    Sources are NFKC-normalised (full-width letters fold to ASCII); targets are learned as
    written, so translations use the same characters as the references they are scored on.
    """

    def __init__(self, source: Side, target: Side, reverse: bool = False):
        self.source, self.target, self.reverse = source, target, reverse
        self.bos_id, self.eos_id = target.vocab.id(BOS), target.vocab.id(EOS)

    @classmethod
    def fit(cls, data: Pairs, config: Config) -> "Preprocessor":
        source = Side.fit(data.sources, "source", config.source_tokenizer,
                          config.lowercase_source, True, config)
        target = Side.fit(data.targets, "target", config.target_tokenizer, False, False, config,
                          specials=(BOS, EOS))
        return cls(source, target, bool(getattr(data, "reverse", False)))

    def encode_pairs(self, sources, targets) -> tuple[list, list, list]:
        """Source ids, decoder inputs (<s> y) and decoder targets (y </s>)."""
        src = [self.source.encode(s) for s in sources]
        tgt = [self.target.encode(t) for t in targets]
        return src, [[self.bos_id, *t] for t in tgt], [[*t, self.eos_id] for t in tgt]

    def to_json(self) -> dict:
        return {"source": self.source.to_json(), "target": self.target.to_json(),
                "reverse": self.reverse}

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessor":
        return cls(Side.from_json(data["source"]), Side.from_json(data["target"]),
                   data.get("reverse", False))


# 4. Model ----------------------------------------------------------------------------------
def _decoder_units(config: Config) -> int:
    from seqkit.backbones import BackboneSpec

    return BackboneSpec.from_config(config).output_units


def build_encoder(config: Config, pre: Preprocessor) -> keras.Model:
    """source ids -> [encoder outputs, attention keys, source mask, *decoder start states]."""
    import keras

    from seqkit import seq2seq
    from seqkit.backbones import BackboneSpec, apply_backbone

    spec = BackboneSpec.from_config(config)
    source = keras.Input(shape=(None,), dtype="int32", name="source")  # (batch, src_time)
    mask = seq2seq.PaddingMask(name="source_mask")(source)
    x = keras.layers.Embedding(len(pre.source.vocab), config.embedding_dim, mask_zero=True,
                               name="source_embedding")(source)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="source_dropout")(x)
    outputs, states = apply_backbone(x, spec, return_sequences=True, return_state=True,
                                     name="encoder")  # (batch, src_time, enc_units)
    if spec.bidirectional:  # forward and backward states side by side: (batch, 2 * units)
        per_direction = len(states) // 2
        states = [keras.layers.Concatenate(name=f"bridge_{i}")([states[i],
                                                                 states[i + per_direction]])
                  for i in range(per_direction)]
    if config.attention == "none":
        return keras.Model(source, states, name="encoder")
    units = config.attention_units if config.attention == "bahdanau" else _decoder_units(config)
    keys = keras.layers.Dense(units, use_bias=False, name="attention_key")(outputs)
    return keras.Model(source, [outputs, keys, mask, *states], name="encoder")


def decoder_spec(config: Config, pre: Preprocessor) -> seq2seq.DecoderSpec:
    from seqkit import seq2seq

    return seq2seq.DecoderSpec(
        cell=config.cell, units=_decoder_units(config), vocab_size=len(pre.target.vocab),
        embedding_dim=config.embedding_dim, dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout, forget_bias=config.forget_bias,
        attention=config.attention, attention_units=config.attention_units)


def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    """(source ids, decoder input ids) -> next-token logits (batch, tgt_time, vocab)."""
    import keras

    from seqkit import seq2seq

    encoder = build_encoder(config, pre)
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    encoded = encoder(source)
    context, states = _split_encoded(config, encoded)
    logits, _ = seq2seq.run_decoder(seq2seq.decoder_layers(decoder_spec(config, pre)), target_in,
                                    states, context)
    return keras.Model({"source": source, "target_in": target_in}, logits, name="translation")


def _split_encoded(config: Config, encoded) -> tuple[list, list]:
    encoded = list(encoded) if isinstance(encoded, (list, tuple)) else [encoded]
    if config.attention == "none":
        return [], encoded
    return encoded[:3], encoded[3:]


def prepare(config: Config, pre: Preprocessor, train: Pairs, valid: Pairs,
            resume: bool) -> Plan:
    from seqkit import seq2seq
    from seqkit.lifecycle import Plan
    from seqkit.training import TrainSpec, make_optimizer

    model = build_model(config, pre)
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)), loss=seq2seq.loss())
    return Plan(model, _batches(pre, train, config, shuffle=True),
                _batches(pre, valid, config, shuffle=False), monitor="val_loss", mode="min")


def _batches(pre: Preprocessor, pairs: Pairs, config: Config, shuffle: bool) -> Batches:
    src, tgt_in, tgt_out = pre.encode_pairs(pairs.sources, pairs.targets)
    keep = [i for i, s in enumerate(src) if s]
    columns = {"source": [src[i] for i in keep], "target_in": [tgt_in[i] for i in keep],
               "target_out": [tgt_out[i] for i in keep]}
    lengths = [len(columns["source"][j]) + len(columns["target_in"][j])
               for j in range(len(keep))]
    return Batches(columns, lengths, config.batch_size,
                   lambda b, rng: ({"source": b["source"], "target_in": b["target_in"]},
                              b["target_out"]),
                   shuffle=shuffle, seed=config.seed)


# 5. Decode ---------------------------------------------------------------------------------
class Translator:
    """Encoder and decoder-step models around a trained model; decodes in NumPy."""

    def __init__(self, model, config: Config, pre: Preprocessor):
        """model: the trained Keras model, or its ONNX graphs (seqkit.graphs.EncoderDecoder:
        then TensorFlow is not imported)."""
        from seqkit.graphs import EncoderDecoder

        self.config, self.pre = config, pre
        vocab = pre.target.vocab
        banned = [vocab.pad_id, vocab.unk_id, pre.bos_id]
        if isinstance(model, EncoderDecoder):
            self.encoder, self._encode = None, model.encoder.predict_on_batch
            self.decoder = decoding.StepDecoder(model.decoder, model.state_count, banned)
        else:
            import tensorflow as tf

            from seqkit import seq2seq

            self.encoder = model.get_layer("encoder")
            spec = decoder_spec(config, pre)
            memory_units = self.encoder.output[0].shape[-1] if config.attention != "none" \
                else 0
            self.decoder = decoding.StepDecoder(
                seq2seq.build_step_model(model, spec, memory_units), spec.state_count, banned)
            self._encode = tf.function(lambda x: self.encoder(x, training=False),
                                       reduce_retracing=True)
        self.step, self.banned = self.decoder.step, self.decoder.banned

    def start(self, source_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Decoder start states then context, one row per source (sources non-empty)."""
        from seqkit.batching import pad

        encoded = self._encode(pad(source_ids))
        encoded = [np.asarray(e) for e in (encoded if isinstance(encoded, (list, tuple))
                                           else [encoded])]
        context, states = _split_encoded(self.config, encoded)
        return [*states, *context]

    def max_length(self, given: int = 0) -> int:
        return given or self.config.max_output_length or 2 * self.pre.target.max_length

    def translate(self, sources: Sequence[str], beam_size: int = 1, n_best: int = 1,
                  max_length: int = 0, batch_size: int = DECODE_BATCH) -> list[list[dict]]:
        """For each source, its n_best translations, best first: {"translation", "score"}
        (score: the log-probability, end of sentence included). Empty sources give []."""
        ids = [self.pre.source.encode(s) if s.strip() else [] for s in sources]
        results: list[list[dict]] = [[] for _ in sources]
        filled = sorted((i for i, s in enumerate(ids) if s), key=lambda i: len(ids[i]))
        limit = self.max_length(max_length)
        progress.expect(len(filled))
        for start in range(0, len(filled), batch_size):
            idx = filled[start:start + batch_size]
            hyps = self._search([ids[i] for i in idx], beam_size, n_best, limit)
            for i, best in zip(idx, hyps):
                results[i] = [decode(h, self.pre) for h in best]
            progress.advance(len(idx))
        return results

    def _search(self, ids, beam_size: int, n_best: int, limit: int):
        return self.decoder.search(self.start(ids), len(ids), self.pre.bos_id,
                                   self.pre.eos_id, limit, beam_size, n_best,
                                   self.config.length_alpha)


def export(model: keras.Model, config: Config, pre: Preprocessor, directory) -> Path:
    """The encoder and the one-step decoder as encoder.onnx and decoder.onnx, which the
    NumPy search drives in predict and evaluate without TensorFlow."""
    from seqkit import graphs
    from seqkit.batching import pad

    translator, directory = Translator(model, config, pre), Path(directory)
    graphs.export(translator.encoder, directory / graphs.ENCODER_FILE, pad([[pre.bos_id]]))
    token = np.array([[pre.bos_id]], dtype=np.int32)
    return graphs.export(translator.decoder.step_model, directory / graphs.DECODER_FILE,
                         [token, *translator.start([[pre.bos_id]])])


def decode(hypothesis: decoding.Hypothesis, pre: Preprocessor) -> dict:
    return {"translation": pre.target.detokenize(hypothesis.tokens),
            "score": round(hypothesis.score, 4)}


# 6. Score ----------------------------------------------------------------------------------
def score(model, config: Config, pre: Preprocessor, data: Pairs, batch_size: int | None = None,
          beam_size: int | None = 1, max_length: int = 0, target_lang: str | None = None,
          limit: int | None = None) -> dict:
    """sacreBLEU BLEU and chrF of the first `limit` pairs (all when None). Validation after
    training is greedy (beam_size 1); evaluate passes beam_size None for the model's beam."""
    translator = Translator(model, config, pre)
    sources, targets = data.sources[:limit], data.targets[:limit]
    beam = config.beam_size if beam_size is None else beam_size
    best = translator.translate(sources, beam, 1, max_length, batch_size or DECODE_BATCH)
    hypotheses = [b[0]["translation"] if b else "" for b in best]
    result = metrics.translation(hypotheses, targets, target_lang)
    result["beam_size"] = beam
    return result


def describe(scores: dict) -> str:
    search = "greedy" if scores["beam_size"] <= 1 else f"beam {scores['beam_size']}"
    return f"BLEU {scores['bleu']:.2f}, chrF {scores['chrf']:.2f} ({search})"


def attention_maps(model_dir: str, source: Source, count: int, beam_size: int | None = None,
                   max_length: int = 0, **_) -> list[dict]:
    """For the first `count` sources of `source`: the translation and, for each of its
    tokens (and the end of sentence), the attention over the source tokens, as
    seqkit.plots draws them. Runs model.keras (TensorFlow), whatever the evaluation ran."""
    import sys

    from seqkit import lifecycle, seq2seq

    setup = lifecycle.attention_setup(sys.modules[__name__], model_dir, source)
    if setup is None:
        return []
    predictor, data = setup
    config, pre = predictor.config, predictor.pre
    translator, spec = predictor.translator, decoder_spec(config, pre)
    beam = config.beam_size if beam_size is None else beam_size
    source_words, target_words = pre.source.vocab.tokens, pre.target.vocab.tokens
    maps = []
    for text in data.sources:
        if len(maps) == count:
            break
        ids = pre.source.encode(text) if text.strip() else []
        if not ids:
            continue
        best = translator._search([ids], beam, 1, translator.max_length(max_length))[0][0]
        tokens = np.array([[pre.bos_id, *best.tokens]], dtype=np.int32)
        start = translator.start([ids])  # [*states, memory, keys, mask]
        weights = seq2seq.attention_weights(predictor.model, spec, tokens,
                                            start[:spec.state_count],
                                            start[spec.state_count:])[0, :, :len(ids)]
        maps.append({"inputs": [source_words[i] for i in ids],
                     "outputs": [target_words[i] for i in [*best.tokens, pre.eos_id]],
                     "weights": np.asarray(weights), "title": f"{text} -> "
                     f"{pre.target.detokenize(best.tokens)}"})
    return maps


# 7. Predict --------------------------------------------------------------------------------
class Predictor(artifacts.Handle):
    """A loaded model that translates sentences in batches."""

    def __init__(self, model_dir: str, batch_size: int | None = None,
                 backend: str | None = None):
        super().__init__(model_dir, NAME, Config, Preprocessor, batch_size or DECODE_BATCH,
                         backend)
        self._translator: Translator | None = None

    @property
    def translator(self) -> Translator:
        """The encoder and step models, assembled on first use."""
        if self._translator is None:
            self._translator = Translator(self.model, self.config, self.pre)
        return self._translator

    def predict(self, sources: Sequence[str], beam_size: int | None = None, n_best: int = 1,
                max_length: int = 0) -> list[dict]:
        """One record per source: {"source", "translation", "score"} (+ "n_best" when
        n_best > 1); an empty source gives translation "" and score None."""
        beam = self.config.beam_size if beam_size is None else beam_size
        if n_best > max(beam, 1):
            raise ConfigError(f"--n-best {n_best} needs a beam at least as wide; got "
                              f"--beam-size {beam}")
        found = self.translator.translate(sources, beam, n_best, max_length, self.batch_size)
        records = []
        for source, best in zip(sources, found):
            record = {"source": source, "translation": best[0]["translation"] if best else "",
                      "score": best[0]["score"] if best else None}
            if n_best > 1:
                record["n_best"] = best
            records.append(record)
        return records

    def chunks(self, input_path: str = "-", chunk_size: int | None = None,
               encoding: str | None = None) -> Iterator[list[str]]:
        """The lines of INPUT, one source per line, cut at io.MAX_LINE_BYTES."""
        return io.iter_lines(input_path, encoding, chunk_size or 256, io.MAX_LINE_BYTES)
