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
from typing import Iterable, Iterator, Sequence

import keras
import numpy as np

from seqkit import artifacts, config as configlib, decoding, images, io, metrics, seq2seq, \
    text
from seqkit.encoders import APPLICATIONS, ENCODERS, RowGather, build_encoder
from seqkit.errors import ConfigError, DataError
from seqkit.images import CaptionSource
from seqkit.batching import GroupedBatches
from seqkit.training import TrainSpec, fit, make_optimizer, set_seed

TASK = NAME = "caption"
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
        configlib.check_choice("encoder", self.encoder, ENCODERS)
        configlib.check_choice("tokenizer", self.tokenizer, text.SIDE_TOKENIZERS)
        configlib.check_choice("attention", self.attention, seq2seq.ATTENTIONS)
        configlib.check_choice("pooling", self.pooling, ("flatten", "mean"))
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
        return self.encoder == "features" or (self.encoder in APPLICATIONS and
                                              not self.fine_tune)

    @property
    def word_head(self) -> bool:
        """Whether training adds the word-prediction loss (only an encoder that learns
        can use it)."""
        return self.word_loss > 0 and not self.frozen

    def word_head_size(self, pre: "Preprocessor") -> int:
        """The word head's width (the caption vocabulary), or 0 without one."""
        return len(pre.captions.vocab) if self.word_head else 0


# 2. Preprocessor ---------------------------------------------------------------------------
class Preprocessor:
    """Captions <-> token ids, and the input shape the encoder takes. Saved as JSON."""

    def __init__(self, captions: text.Side, image_size: int,
                 feature_shape: Sequence[int] | None = None):
        self.captions, self.image_size = captions, image_size
        self.feature_shape = list(feature_shape) if feature_shape else None
        self.bos_id, self.eos_id = captions.vocab.id(BOS), captions.vocab.id(EOS)

    @classmethod
    def fit(cls, captions: Sequence[str], config: Config,
            feature_shape: Sequence[int] | None = None) -> "Preprocessor":
        side = text.Side.fit(captions, "captions", config.tokenizer, config.lowercase, False,
                             config, specials=(BOS, EOS))
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


# 3. Model ----------------------------------------------------------------------------------
def decoder_spec(config: Config, pre: Preprocessor) -> seq2seq.DecoderSpec:
    return seq2seq.DecoderSpec(
        cell=config.cell, units=config.units, vocab_size=len(pre.captions.vocab),
        embedding_dim=config.embedding_dim, dropout=config.dropout,
        recurrent_dropout=config.recurrent_dropout, attention=config.attention,
        attention_units=config.attention_units)


def build_captioner(config: Config, pre: Preprocessor, map_shape: Sequence[int]
                    ) -> keras.Model:
    """{features (batch, positions, channels), tokens (batch, time)} -> next-token logits
    (batch, time, vocab). The pooled map sets the decoder's start state(s)."""
    spec = decoder_spec(config, pre)
    features = keras.Input(shape=tuple(map_shape), name="features")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    states, context = _start(features, spec, config.pooling, config.dropout)
    logits, _ = seq2seq.run_decoder(seq2seq.decoder_layers(spec), tokens, states, context)
    return keras.Model({"features": features, "tokens": tokens}, logits, name="captioner")


def _start(features, spec: seq2seq.DecoderSpec, pooling: str, dropout: float = 0.0,
           layers=None):
    """Decoder start states from the pooled map, and the attention context (the map and
    its keys). `layers` takes trained layers by name; without it they are made."""
    def get(name, make):
        return layers.get_layer(name) if layers is not None else make()

    pool = keras.layers.Flatten if pooling == "flatten" else keras.layers.GlobalAveragePooling1D
    pooled = get("image_pool", lambda: pool(name="image_pool"))(features)  # (batch, dim)
    if layers is None and dropout > 0:
        pooled = keras.layers.Dropout(dropout, name="image_dropout")(pooled)
    states = [get(f"init_state_{i}", lambda i=i: keras.layers.Dense(
        spec.units, activation="tanh", name=f"init_state_{i}"))(pooled)
        for i in range(spec.state_count)]  # each (batch, units)
    if spec.attention == "none":
        return states, []
    keys = get("attention_key", lambda: keras.layers.Dense(
        spec.key_units, use_bias=False, name="attention_key"))(features)
    return states, [features, keys]  # (batch, positions, channels), (batch, positions, keys)


def assemble(encoder: keras.Model | None, captioner: keras.Model,
             map_shape: Sequence[int] = (), words: int = 0) -> keras.Model:
    """{image (images, size, size, 3), image_index (captions,), tokens (captions, time)}
    -> logits (captions, time, vocab): each image of a batch is encoded once and its map
    goes to each of its captions (image_index: the row of each caption's image). Without
    an encoder the input is the map itself, "features" (images, *map_shape).

    words > 0 (a vocabulary size) adds the word head for training: the outputs become
    {"next": those logits, "words": (captions, words) logits of each word being in some
    caption of the image}, from the mean of the map, so the encoder is taught what is in
    the picture directly and not only through the decoder."""
    name = "image" if encoder is not None else "features"
    image = keras.Input(shape=encoder.input.shape[1:] if encoder is not None
                        else tuple(map_shape), name=name)
    index = keras.Input(shape=(), dtype="int32", name="image_index")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    features = encoder(image) if encoder is not None else image  # (images, positions, ch)
    rows = RowGather(name="image_rows")([features, index])  # (captions, positions, ch)
    logits = captioner({"features": rows, "tokens": tokens})
    if words:
        pooled = keras.layers.GlobalAveragePooling1D(name="word_pool")(features)
        found = keras.layers.Dense(words, name="word_head")(pooled)  # (images, words)
        logits = {"next": logits, "words": RowGather(name="word_rows")([found, index])}
    return keras.Model({name: image, "image_index": index, "tokens": tokens}, logits,
                       name="caption")


def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    encoder = build_encoder(config, pre.feature_shape)
    return assemble(encoder, build_captioner(config, pre, encoder.output.shape[1:]),
                    words=config.word_head_size(pre))


def compile_model(model: keras.Model, config: Config, words: int = 0) -> None:
    loss, weights = seq2seq.loss(), None
    if words:  # binary cross-entropy is a mean over the words; the weight makes it their sum
        loss = {"next": loss, "words": keras.losses.BinaryCrossentropy(from_logits=True)}
        weights = {"next": 1.0, "words": config.word_loss * words}
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)), loss=loss,
                  loss_weights=weights)


# 4. Decode ---------------------------------------------------------------------------------
class Captioner:
    """Encoder, start and decoder-step models around a trained model; decodes in NumPy."""

    def __init__(self, model: keras.Model, config: Config, pre: Preprocessor):
        import tensorflow as tf

        self.config, self.pre = config, pre
        self.encoder = model.get_layer("encoder")
        trained = model.get_layer("captioner")
        spec = decoder_spec(config, pre)
        map_shape = self.encoder.output.shape[1:]
        features = keras.Input(shape=map_shape, name="features")
        states, context = _start(features, spec, config.pooling, layers=trained)
        self.start_model = keras.Model(features, [*states, *context], name="start")
        vocab = pre.captions.vocab
        self.decoder = seq2seq.StepDecoder(
            seq2seq.build_step_model(trained, spec, map_shape[-1], with_mask=False),
            spec.state_count, banned=[vocab.pad_id, vocab.unk_id, pre.bos_id])
        self._start = tf.function(
            lambda x: self.start_model(self.encoder(x, training=False), training=False),
            reduce_retracing=True)

    def max_length(self, given: int = 0) -> int:
        length = self.pre.captions.max_length
        return given or self.config.max_output_length or length + max(2, length // 4)

    def caption(self, inputs: np.ndarray, beam_size: int = 1, n_best: int = 1,
                max_length: int = 0, batch_size: int = 64) -> list[list[dict]]:
        """For each image (or feature map), its n_best captions, best first:
        {"caption", "score"} (score: the log-probability, end of caption included)."""
        results = []
        for start in range(0, len(inputs), batch_size):
            batch = np.asarray(inputs[start:start + batch_size], dtype=np.float32)
            out = self._start(batch)
            states = [np.asarray(s) for s in (out if isinstance(out, (list, tuple)) else [out])]
            found = self.decoder.search(states, len(batch), self.pre.bos_id, self.pre.eos_id,
                                        self.max_length(max_length), beam_size, n_best,
                                        self.config.length_alpha)
            results += [[decode(h, self.pre) for h in best] for best in found]
        return results


def decode(hypothesis: decoding.Hypothesis, pre: Preprocessor) -> dict:
    return {"caption": pre.captions.detokenize(hypothesis.tokens),
            "score": round(hypothesis.score, 4)}


# Library functions ---------------------------------------------------------------------------
def split_holdout(array: np.ndarray, data: images.Captions, fraction: float, seed: int):
    """Hold out a fraction of the images (with all their captions), so none leaks."""
    order = np.random.default_rng(seed).permutation(len(data.names))
    cut = max(1, int(round(len(order) * fraction)))
    if cut >= len(order):
        raise DataError(f"{len(order)} images are too few to hold some out for validation; "
                        "give --valid", path=data.path)
    train, valid = np.sort(order[cut:]), np.sort(order[:cut])
    return array[train], data.subset(train), array[valid], data.subset(valid)


def word_log_odds(pre: Preprocessor, data: images.Captions) -> np.ndarray:
    """Log-odds of each word being in some caption of a training image: the word head's
    starting bias. From zero (even odds) the bias of a rare word would take thousands of
    steps to come down, and the head would learn word frequencies, not pictures."""
    counts = np.zeros(len(pre.captions.vocab))
    for captions in data.captions:
        counts[list({i for c in captions for i in pre.encode(c)[1]})] += 1
    share = np.clip(counts / max(len(data.captions), 1), 0.5 / max(len(data.captions), 1),
                    1 - 0.5 / max(len(data.captions), 1))
    return np.log(share / (1 - share)).astype(np.float32)


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
    rng = np.random.default_rng([config.seed, 1])

    def structure(b: dict) -> tuple:
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


def encode_images(encoder: keras.Model, inputs: np.ndarray, batch_size: int = 64
                  ) -> np.ndarray:
    """The feature maps of a frozen encoder, computed once: (n, positions, channels)."""
    out = [np.asarray(encoder(inputs[i:i + batch_size].astype(np.float32), training=False))
           for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *encoder.output.shape[1:]))


def train(data: CaptionSource, out_dir: str, config: Config, *,
          valid: CaptionSource | None = None, force: bool = False, resume: bool = False
          ) -> dict:
    """Train a captioning model and write MODEL_DIR; returns the validation metrics."""
    if (config.encoder == "features") != (data.features is not None):
        raise ConfigError("--encoder features goes with --features FILE.npy (and the other "
                          "encoders with --images DIR)")
    inputs, captions = data.load(config.image_size)  # bad data fails before anything is written
    valid_set = valid.load(config.image_size) if valid is not None else None
    work = artifacts.start_run(out_dir, force=force, resume=resume)
    if resume:
        config = artifacts.resume_config(work, TASK, config)
    set_seed(config.seed)
    if valid_set is None:
        inputs, captions, *valid_set = split_holdout(inputs, captions, config.valid_fraction,
                                                     config.seed)
        log.info("no --valid given: holding out %s of %s images", f"{len(valid_set[1].names):,}",
                 f"{len(captions.names) + len(valid_set[1].names):,}")
    feature_shape = list(inputs.shape[1:]) if config.encoder == "features" else None
    pre = artifacts.setup_preprocessor(
        work, task=TASK, config=config, resume=resume, from_json=Preprocessor.from_json,
        fit=lambda: Preprocessor.fit([c for cs in captions.captions for c in cs], config,
                                     feature_shape))
    encoder = build_encoder(config, pre.feature_shape)
    captioner = build_captioner(config, pre, encoder.output.shape[1:])
    words = config.word_head_size(pre)
    if config.frozen:  # the decoder trains on the encoder's features, computed once
        inputs, valid_inputs = encode_images(encoder, inputs), encode_images(encoder,
                                                                             valid_set[0])
        model = assemble(None, captioner, encoder.output.shape[1:])
        name = "features"
    else:
        valid_inputs, model, name = valid_set[0], assemble(encoder, captioner,
                                                           words=words), "image"
        if words and not resume:
            model.get_layer("word_head").bias.assign(word_log_odds(pre, captions))
    compile_model(model, config, words)
    model, summary = fit(model, _batches(pre, inputs, captions, config, True, name),
                         _batches(pre, valid_inputs, valid_set[1], config, False, name),
                         TrainSpec.from_config(config), work,
                         monitor="val_next_loss" if config.word_head else "val_loss",
                         mode="min", resume=resume)
    if config.frozen:
        model = assemble(encoder, model.get_layer("captioner"))
    scores = score(Captioner(model, config, pre), valid_set[0], valid_set[1], beam_size=1)
    log.info("validation BLEU-1 %.2f, BLEU-4 %.2f (greedy)", scores["bleu1"], scores["bleu4"])
    result = {"validation": scores, "training": summary}
    artifacts.complete(work, out_dir, task=TASK, model=model, preprocessor=pre.to_json(),
                       config=config, metrics=result)
    return result


def score(captioner: Captioner, inputs: np.ndarray, data: images.Captions, beam_size: int,
          max_length: int = 0, batch_size: int = 64) -> dict:
    best = captioner.caption(inputs, beam_size, 1, max_length, batch_size)
    hypotheses = [b[0]["caption"] if b else "" for b in best]
    result = metrics.caption_bleu(hypotheses, data.captions, captioner.config.lowercase)
    result["beam_size"] = beam_size
    return result


class Predictor:
    """A loaded model that captions image files (or feature rows) in batches."""

    def __init__(self, model_dir: str, batch_size: int = 64, *, images_dir: str | None = None,
                 features: str | None = None, feature_list: str | None = None,
                 skip_bad_images: bool = False):
        loaded = artifacts.load(model_dir, TASK, Config)
        self.config = loaded.config
        self.pre = Preprocessor.from_json(loaded.preprocessor)
        self.captioner = Captioner(loaded.model, self.config, self.pre)
        self.batch_size, self.images_dir = batch_size, images_dir
        self.bad = io.BadRecords(skip_bad_images, "image")
        self.features = None
        if self.config.encoder == "features":
            if features is None:
                raise ConfigError("this model captions precomputed features: give "
                                  "--features FILE.npy (with its image list)")
            self.features = images.read_features(features, feature_list)
            self.features_path = features

    def load(self, paths: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        """The inputs for `paths` and the indices that could be read."""
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
        found = self.captioner.caption(inputs, beam, 1, max_length, self.batch_size)
        records = [{"image": p, "caption": "", "score": None} for p in paths]
        for j, best in zip(ok, found):
            records[named[j]].update(best[0])
        return records

    def stream(self, chunks: Iterable[list[str]], **options) -> Iterator[list[dict]]:
        """Caption chunks of paths; yield each chunk's records in order, then warn once
        about any images skipped."""
        for chunk in chunks:
            yield self.predict(chunk, **options)
        self.bad.warn()


def evaluate(model_dir: str, data: CaptionSource, beam_size: int | None = None,
             max_length: int = 0, batch_size: int = 64) -> dict:
    """BLEU-1..4 of MODEL_DIR's captions against all reference captions of each image."""
    predictor = Predictor(model_dir, batch_size, features=data.features,
                          feature_list=data.feature_list)
    inputs, captions = data.load(predictor.pre.image_size)
    beam = predictor.config.beam_size if beam_size is None else beam_size
    return score(predictor.captioner, inputs, captions, beam, max_length, batch_size)
