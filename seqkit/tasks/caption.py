"""Image captioning, one-to-many: an image encoder, and an RNN decoder whose start state
comes from the image (show and tell), optionally attending over the spatial feature map at
each step (show, attend and tell).

Data: a folder of images (JPEG, PNG) and a CSV `image,caption` (several rows per image
allowed; names relative to the folder). The encoder is a small CNN trained from scratch
(default), a keras.applications backbone (random, ImageNet or local weights; frozen, with
its features computed once, or fine-tuned), or precomputed features (FILE.npy + FILE.txt).

    seqkit caption train data/caption_train.csv --images data/caption_images -o runs/cap
    ls data/caption_images/*.png | seqkit caption predict runs/cap
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from seqkit import artifacts, choices, config as configlib, decoding, images, io, metrics, text
from seqkit.batching import GroupedBatches
from seqkit.errors import ConfigError, DataError
from seqkit.images import Captioned

if TYPE_CHECKING:
    import keras

    from seqkit import seq2seq
    from seqkit.lifecycle import Plan

NAME = "caption"
BOS, EOS = "<s>", "</s>"
log = logging.getLogger("seqkit")


# 1. Config ---------------------------------------------------------------------------------
@dataclass
class Config(configlib.Training, configlib.Recurrent):
    # shared keys (seqkit.config) whose default differs here
    cell: str = "gru"
    units: int = 256
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.002
    patience: int = 4
    lr_decay: float = 0.5
    # this task's own keys
    image_size: int = 64  # images are resized (whole, not cropped) to image_size squared
    encoder: str = "cnn"  # cnn | features | a keras.applications name (see seqkit.encoders)
    encoder_weights: str = ""  # applications: "" (random), "imagenet", or a weights file
    fine_tune: bool = False  # applications: train the backbone too (else frozen, cached)
    cnn_filters: int = 16  # cnn: filters of the first block, doubled per block
    cnn_blocks: int = 4  # cnn: conv-norm-relu-pool blocks (64 px -> a 4x4 map)
    pooling: str = "flatten"  # map -> start state: flatten (keeps where things are) | mean
    augment_shift: float = 0.0  # training: move images by up to this fraction of a side
    tokenizer: str = "auto"
    vocab_size: int = 8000  # sentencepiece pieces
    lowercase: bool = True  # captions are learned and scored in lower case
    min_count: int = 2  # words seen fewer times become <unk> (never produced)
    max_vocab: int = 10000
    max_length: int = 0  # tokens kept per caption; 0: the length_percentile
    length_percentile: float = 99.0
    valid_fraction: float = 0.1  # of the images, held out when no --valid is given
    embedding_dim: int = 128
    attention: str = "luong"  # luong | bahdanau (over the map) | none (show and tell)
    attention_units: int = 256
    word_loss: float = 0.0  # weight of the encoder's extra task: say which words the captions use
    beam_size: int = 1  # evaluate and predict: greedy; beams shorten captions (see README)
    length_alpha: float = 0.6
    max_output_length: int = 0  # 0: the caption max_length plus a quarter

    def validate(self) -> None:
        configlib.check_choice("encoder", self.encoder, choices.ENCODERS)
        configlib.check_choice("tokenizer", self.tokenizer, choices.SIDE_TOKENIZERS)
        configlib.check_choice("attention", self.attention, choices.ATTENTIONS)
        configlib.check_choice("pooling", self.pooling, choices.MAP_POOLINGS)
        configlib.check_range("length_percentile", self.length_percentile, 50, 100)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.001, 0.5)
        configlib.check_range("image_size", self.image_size, 16, 1024)
        configlib.check_range("augment_shift", self.augment_shift, 0.0, 0.25)
        configlib.check_range("word_loss", self.word_loss, 0.0)
        if min(self.units, self.embedding_dim, self.attention_units, self.beam_size,
               self.cnn_filters, self.cnn_blocks) < 1 or min(self.max_length,
                                                             self.max_output_length) < 0:
            raise ConfigError("units, embedding_dim, attention_units, beam_size, cnn_filters "
                              "and cnn_blocks must be >= 1; max_length and max_output_length "
                              ">= 0")
        if self.image_size >> self.cnn_blocks < 1:
            raise ConfigError(f"{self.cnn_blocks} cnn_blocks halve a {self.image_size} px "
                              "image to nothing; use fewer blocks or a larger image_size")
        if self.encoder_weights and self.encoder_weights != "imagenet" and \
                not Path(self.encoder_weights).is_file():
            raise ConfigError(f"encoder_weights must be empty, 'imagenet' or a weights file; "
                              f"no such file: {self.encoder_weights}")
        super().validate()

    @property
    def frozen(self) -> bool:
        """Whether the encoder is fixed while the decoder trains (its features are cached)."""
        return self.encoder == "features" or (self.encoder in choices.APPLICATIONS and
                                              not self.fine_tune)

    @property
    def word_head(self) -> bool:
        """Whether training adds the word-prediction loss (only an encoder that learns
        can use it)."""
        return self.word_loss > 0 and not self.frozen

    def word_head_size(self, pre: "Preprocessor") -> int:
        """The word head's width (the caption vocabulary), or 0 without one."""
        return len(pre.captions.vocab) if self.word_head else 0


# 2. Data -----------------------------------------------------------------------------------
Source = images.CaptionSource  # the caption table, and --images DIR or --features FILE.npy


def read(source: Source, config: Config, reference=None) -> Captioned:
    """Each image of the table decoded once at config.image_size (or its feature row).
    The source must fit the encoder: --features for "features", --images for the others."""
    if isinstance(reference, Preprocessor):  # a trained model's
        if config.encoder == "features" and source.features is None:
            raise _features_needed()
        if config.encoder != "features" and source.features is not None:
            raise ConfigError("this model captions images: give --images DIR, not --features")
    elif (config.encoder == "features") != (source.features is not None):
        raise ConfigError("--encoder features goes with --features FILE.npy (and the other "
                          "encoders with --images DIR)")
    return source.load(config.image_size)


def _features_needed() -> ConfigError:
    return ConfigError("this model captions precomputed features: give --features FILE.npy "
                       "(with its image list)")


def split(data: Captioned, config: Config) -> tuple[Captioned, Captioned]:
    """Hold out a fraction of the images (with all their captions), so none leaks."""
    count = len(data.captions.names)
    order = np.random.default_rng(config.seed).permutation(count)
    cut = max(1, int(round(count * config.valid_fraction)))
    if cut >= count:
        raise DataError(f"{count} images are too few to hold some out for validation; "
                        "give --valid", path=data.captions.path)
    log.info("no --valid given: holding out %s of %s images", f"{cut:,}", f"{count:,}")
    return data.subset(np.sort(order[cut:])), data.subset(np.sort(order[:cut]))


# 3. Preprocessor ---------------------------------------------------------------------------
class Preprocessor:
    """Captions <-> token ids, and the input shape the encoder takes. Saved as JSON."""

    def __init__(self, captions: text.Side, image_size: int,
                 feature_shape: Sequence[int] | None = None):
        self.captions, self.image_size = captions, image_size
        self.feature_shape = list(feature_shape) if feature_shape else None
        self.bos_id, self.eos_id = captions.vocab.id(BOS), captions.vocab.id(EOS)

    @classmethod
    def fit(cls, data: Captioned, config: Config) -> "Preprocessor":
        side = text.Side.fit([c for cs in data.captions.captions for c in cs], "captions",
                             config.tokenizer, config.lowercase, False, config,
                             specials=(BOS, EOS))
        feature_shape = list(data.inputs.shape[1:]) if config.encoder == "features" else None
        return cls(side, config.image_size, feature_shape)

    def encode(self, caption: str) -> tuple[list[int], list[int]]:
        """Decoder inputs (<s> y) and targets (y </s>)."""
        ids = self.captions.encode(caption)
        return [self.bos_id, *ids], [*ids, self.eos_id]

    def to_json(self) -> dict:
        return {"captions": self.captions.to_json(), "image_size": self.image_size,
                "feature_shape": self.feature_shape}

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessor":
        return cls(text.Side.from_json(data["captions"]), data["image_size"],
                   data.get("feature_shape"))


# 4. Model ----------------------------------------------------------------------------------
def decoder_spec(config: Config, pre: Preprocessor) -> seq2seq.DecoderSpec:
    from seqkit import seq2seq

    return seq2seq.DecoderSpec(
        cell=config.cell, units=config.units, vocab_size=len(pre.captions.vocab),
        embedding_dim=config.embedding_dim, dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout, forget_bias=config.forget_bias,
        attention=config.attention, attention_units=config.attention_units)


def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    """The trainable model: encoder and captioner (seqkit.encoders.assemble)."""
    from seqkit.encoders import assemble, build_captioner, build_encoder

    encoder = build_encoder(config, pre.feature_shape)
    captioner = build_captioner(decoder_spec(config, pre), encoder.output.shape[1:],
                                config.pooling, config.dropout)
    return assemble(encoder, captioner, words=config.word_head_size(pre))


def prepare(config: Config, pre: Preprocessor, train: Captioned, valid: Captioned,
            resume: bool) -> Plan:
    """A learning encoder trains with the decoder on images; a frozen one computes each
    image's features once, the decoder trains on them, and `finish` puts them together."""
    from seqkit import encoders, seq2seq
    from seqkit.lifecycle import Plan
    from seqkit.training import TrainSpec, make_optimizer

    encoder = encoders.build_encoder(config, pre.feature_shape)
    map_shape = encoder.output.shape[1:]
    captioner = encoders.build_captioner(decoder_spec(config, pre), map_shape, config.pooling,
                                         config.dropout)
    words = config.word_head_size(pre)
    inputs, valid_inputs = train.inputs, valid.inputs
    if config.frozen:  # the decoder trains on the encoder's features, computed once
        inputs = encoders.encode_images(encoder, inputs)
        valid_inputs = encoders.encode_images(encoder, valid_inputs)
        model, name = encoders.assemble(None, captioner, map_shape), "features"
    else:
        model, name = encoders.assemble(encoder, captioner, words=words), "image"
        if words and not resume:
            model.get_layer("word_head").bias.assign(
                encoders.word_log_odds(pre, train.captions))
    loss, weights = seq2seq.loss(), None
    if words:  # binary cross-entropy is a mean over the words; the weight makes it their sum
        import keras

        loss = {"next": loss, "words": keras.losses.BinaryCrossentropy(from_logits=True)}
        weights = {"next": 1.0, "words": config.word_loss * words}
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)), loss=loss,
                  loss_weights=weights)

    def finish(fitted: keras.Model) -> keras.Model:  # the saved model takes images
        return encoders.assemble(encoder, fitted.get_layer("captioner")) if config.frozen \
            else fitted

    return Plan(model, _batches(pre, inputs, train.captions, config, True, name),
                _batches(pre, valid_inputs, valid.captions, config, False, name),
                monitor="val_next_loss" if words else "val_loss", mode="min", finish=finish)


def _batches(pre: Preprocessor, inputs: np.ndarray, data: images.Captions, config: Config,
             shuffle: bool, input_name: str) -> GroupedBatches:
    """One example per caption, an image's captions in one batch; each batch carries each
    of its images (or their features) once, moved a little when training on images."""
    words = config.word_head_size(pre) if input_name == "image" else 0
    index, tokens_in, tokens_out, image_words = [], [], [], []
    for i, captions in enumerate(data.captions):
        seen = set()
        for caption in captions:
            x, y = pre.encode(caption)
            index.append(i)
            tokens_in.append(x)
            tokens_out.append(y)
            seen.update(y if words else ())
        image_words.append(sorted(seen - {pre.captions.vocab.unk_id}))
    pixels = round(config.augment_shift * config.image_size) \
        if shuffle and input_name == "image" else 0

    def structure(b: dict, rng: np.random.Generator) -> tuple:
        rows, inverse = np.unique(b["image"], return_inverse=True)
        batch = images.shift(inputs[rows], pixels, rng).astype(np.float32)
        targets = b["tokens_out"]
        if words:  # which words some caption of each caption's image uses
            found = np.zeros((len(targets), words), np.float32)
            for row, image in enumerate(b["image"]):
                found[row, image_words[image]] = 1.0
            targets = {"next": targets, "words": found}
        return ({input_name: batch, "image_index": inverse.astype(np.int32),
                 "tokens": b["tokens_in"]}, targets)

    return GroupedBatches({"image": index, "tokens_in": tokens_in, "tokens_out": tokens_out},
                          [len(t) for t in tokens_in], index, config.batch_size, structure,
                          shuffle=shuffle, seed=config.seed)


# 5. Decode and score -----------------------------------------------------------------------
def make_captioner(model, config: Config, pre: Preprocessor) -> decoding.Captioner:
    """The search around a trained model (seqkit.encoders.keras_captioner), or around its
    ONNX graphs (graphs.EncoderDecoder: no TensorFlow)."""
    from seqkit.graphs import EncoderDecoder

    vocab = pre.captions.vocab
    banned = [vocab.pad_id, vocab.unk_id, pre.bos_id]
    if isinstance(model, EncoderDecoder):
        return decoding.Captioner(model.encoder.predict_on_batch, decoding.StepDecoder(
            model.decoder, model.state_count, banned), pre.bos_id, pre.eos_id,
            config.length_alpha)
    from seqkit.encoders import keras_captioner

    return keras_captioner(model, decoder_spec(config, pre), config.pooling, pre.bos_id,
                           pre.eos_id, banned, config.length_alpha)


def export(model: keras.Model, config: Config, pre: Preprocessor, directory) -> Path:
    """encoder.onnx and decoder.onnx (seqkit.encoders.export_captioner)."""
    from seqkit.encoders import export_captioner

    return export_captioner(make_captioner(model, config, pre), pre.bos_id, directory)


def caption(captioner, config: Config, pre: Preprocessor, inputs: np.ndarray,
            beam_size: int = 1, max_length: int = 0, batch_size: int = 64) -> list[dict]:
    """The best caption of each image (or feature map): {"caption", "score"} (score: the
    log-probability, end of caption included). Captions end after max_length tokens, by
    default the longest training caption kept plus a quarter."""
    limit = output_limit(config, pre, max_length)
    return [decode(best[0], pre) for best in
            captioner.search(inputs, limit, beam_size, 1, batch_size)]


def output_limit(config: Config, pre: Preprocessor, max_length: int = 0) -> int:
    length = pre.captions.max_length
    return max_length or config.max_output_length or length + max(2, length // 4)


def decode(hypothesis: decoding.Hypothesis, pre: Preprocessor) -> dict:
    return {"caption": pre.captions.detokenize(hypothesis.tokens),
            "score": round(hypothesis.score, 4)}


def score(model, config: Config, pre: Preprocessor, data: Captioned,
          batch_size: int | None = None, beam_size: int | None = 1, max_length: int = 0
          ) -> dict:
    """BLEU-1..4 of the model's captions against all reference captions of each image;
    greedy unless beam_size says otherwise (None: the model's beam_size)."""
    beam = config.beam_size if beam_size is None else beam_size
    found = caption(make_captioner(model, config, pre), config, pre, data.inputs, beam,
                    max_length, batch_size or 64)
    hypotheses = [record["caption"] for record in found]
    result = metrics.caption_bleu(hypotheses, data.captions.captions, config.lowercase)
    result["beam_size"] = beam
    return result


def describe(scores: dict) -> str:
    return f"BLEU-1 {scores['bleu1']:.2f}, BLEU-4 {scores['bleu4']:.2f} (greedy)"


def attention_maps(model_dir: str, source: images.CaptionSource, count: int,
                   beam_size: int | None = None, max_length: int = 0, **_) -> list[dict]:
    """For the first `count` images of `source`: the caption and, for each of its tokens
    (and the end of caption), the attention over the feature map's regions, with the image
    (None for precomputed features), as seqkit.plots draws them. Runs model.keras
    (TensorFlow), whatever the evaluation ran."""
    import sys

    from seqkit import lifecycle, seq2seq

    setup = lifecycle.attention_setup(sys.modules[__name__], model_dir, source)
    if setup is None:
        return []
    predictor, data = setup
    config, pre = predictor.config, predictor.pre
    inputs = np.asarray(data.inputs[:count])
    captioner = make_captioner(predictor.model, config, pre)
    beam = config.beam_size if beam_size is None else beam_size
    found = captioner.search(inputs, output_limit(config, pre, max_length), beam, 1)
    trained, spec = predictor.model.get_layer("captioner"), decoder_spec(config, pre)
    words = pre.captions.vocab.tokens
    maps = []
    for i, hypotheses in enumerate(found):
        best = hypotheses[0]
        tokens = np.array([[pre.bos_id, *best.tokens]], dtype=np.int32)
        start = [np.asarray(s) for s in captioner.start(inputs[i:i + 1].astype(np.float32))]
        weights = seq2seq.attention_weights(trained, spec, tokens, start[:spec.state_count],
                                            start[spec.state_count:])[0]
        maps.append({"image": inputs[i] if inputs.ndim == 4 else None,
                     "outputs": [words[t] for t in [*best.tokens, pre.eos_id]],
                     "weights": np.asarray(weights), "title": f"{data.captions.names[i]}: "
                     f"{pre.captions.detokenize(best.tokens)}"})
    return maps


# 6. Predict ----------------------------------------------------------------------------------
class Predictor(artifacts.Handle):
    """A loaded model that captions image files (or feature rows) in batches."""

    def __init__(self, model_dir: str, batch_size: int | None = None, *,
                 images_dir: str | None = None, features: str | None = None,
                 feature_list: str | None = None, skip_bad_images: bool = False,
                 backend: str | None = None):
        super().__init__(model_dir, NAME, Config, Preprocessor, batch_size or 64, backend)
        self.images_dir, self.features_path = images_dir, features
        self.bad = io.BadRecords(skip_bad_images, "image")
        self.features = None
        if self.config.encoder == "features" and features is not None:
            self.features = images.read_features(features, feature_list)
        self._captioner = None  # made at the first predict (evaluate needs none)

    def _check(self) -> None:
        if self.config.encoder == "features" and self.features is None:
            raise _features_needed()

    def load(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """The inputs for `paths` and the indices that could be read."""
        self._check()
        if self.features is not None:
            array, rows = self.features
            ok = [i for i, p in enumerate(paths) if p in rows or self.bad(
                f"image {p!r} has no row in the features file", self.features_path)]
            return array[[rows[paths[i]] for i in ok]], ok
        files = [images.resolve_inside(self.images_dir, p, self.images_dir, None)
                 if self.images_dir else Path(p) for p in paths]
        return images.load_images(files, self.pre.image_size, self.bad)

    def predict(self, paths: Sequence[str], beam_size: int | None = None,
                max_length: int = 0) -> list[dict]:
        """One record per path: {"image", "caption", "score"}; an empty path, or one that
        could not be read (with skip_bad_images), gives caption "" and score None."""
        beam = self.config.beam_size if beam_size is None else beam_size
        named = [i for i, p in enumerate(paths) if p.strip()]
        inputs, ok = self.load([paths[i].strip() for i in named])
        if self._captioner is None:
            self._captioner = make_captioner(self.model, self.config, self.pre)
        found = caption(self._captioner, self.config, self.pre, inputs, beam, max_length,
                        self.batch_size)
        records = [{"image": p, "caption": "", "score": None} for p in paths]
        for j, best in zip(ok, found):
            records[named[j]].update(best)
        return records

    def chunks(self, input_path: str = "-", chunk_size: int | None = None,
               paths: Sequence[str] | None = None) -> Iterator[list[str]]:
        """Image paths in chunks (of batch_size): `paths` as given, else one per line of
        INPUT; after the last chunk, one warning counts the images skipped."""
        self._check()  # before any input is read
        size = chunk_size or self.batch_size
        if paths:
            for start in range(0, len(paths), size):
                yield list(paths[start:start + size])
        else:
            yield from io.iter_lines(input_path, chunk_size=size,
                                     max_line_bytes=io.MAX_LINE_BYTES)
        self.bad.warn()
