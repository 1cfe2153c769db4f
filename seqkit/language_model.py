"""The language model's Keras side (seqkit.tasks.lm): the model that is trained, and the
step model, rebuilt from its named layers, that runs it from given RNN states for scoring and
generation. Keras is imported when a model is built."""

from __future__ import annotations

import logging
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from seqkit import progress

log = logging.getLogger("seqkit")

if TYPE_CHECKING:
    import keras

    from seqkit.tasks.lm import Config, Preprocessor


def build_model(config: Config, pre: Preprocessor, rows: int | None = None) -> keras.Model:
    """tokens (batch, time) -> next-token logits (batch, time, vocab). With `rows`, the
    model for stateful training: batches of `rows` rows, recurrent layers that start each
    batch from the states the last one ended with (the same weights as without)."""
    import keras

    from seqkit.backbones import BackboneSpec, apply_backbone

    vocab = len(pre.vocab)
    tokens = keras.Input(shape=(None,), batch_size=rows, dtype="int32", name="tokens")
    # ReversibleEmbedding is a plain Embedding when not tied (its reverse call is unused)
    embedding = keras.layers.ReversibleEmbedding(vocab, config.embedding_dim,
                                                 name="embedding")
    x = embedding(tokens)  # (batch, time, dim)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    x, _ = apply_backbone(x, BackboneSpec.from_config(config), return_sequences=True,
                          stateful=rows is not None)
    logits = _head(x, config, vocab, embedding=embedding)  # (batch, time, vocab)
    return keras.Model(tokens, logits, name="lm")


def stateful_rows(config: Config, train_ids: list, valid_ids: list) -> int | None:
    """The batch rows of stateful training: the batch size; None (stateless) unless it is
    asked for and the texts are long enough (a batch of rows from a short text would make
    an epoch of min_epoch_tokens thousands of tiny steps)."""
    import tensorflow as tf

    if not config.stateful:
        return None
    rows, length = config.batch_size, config.sequence_length
    if tf.distribute.has_strategy():
        log.warning("stateful is not used with --distribute: training from zero states")
        return None
    if len(train_ids) <= rows * length or len(valid_ids) <= rows:
        log.warning("stateful is not used: it needs more than %s training tokens (batch_size "
                    "x sequence_length) and %s validation tokens; training from zero states",
                    f"{rows * length:,}", f"{rows:,}")
        return None
    return rows


def reset_states(model: keras.Model) -> keras.callbacks.Callback:
    """The callback that zeroes a stateful model's states where a pass over a text starts:
    each epoch, and each validation."""
    import keras

    layers = [layer for layer in model.layers if getattr(layer, "stateful", False)]

    def reset(*_):
        for layer in layers:
            layer.reset_states()

    return keras.callbacks.LambdaCallback(on_epoch_begin=reset, on_test_begin=reset)


def without_states(model: keras.Model, config: Config, pre: Preprocessor) -> keras.Model:
    """The stateful training model's weights in the model every other command loads (any
    batch size, each call from zero states)."""
    plain = build_model(config, pre)
    plain.set_weights(model.get_weights())
    return plain


def _head(x, config: Config, vocab: int, embedding=None, model=None):
    """The softmax layer: the embedding matrix transposed (tied, after a projection to the
    embedding size, whose bias gives the logits one), or a Dense as wide as the vocabulary.
    New layers when `model` is None, else the trained model's layers of the same names."""
    import keras

    get = (lambda name, make: make()) if model is None else \
        (lambda name, make: model.get_layer(name))
    if config.tie_embeddings:
        x = get("projection", lambda: keras.layers.Dense(config.embedding_dim,
                                                         name="projection"))(x)
        embedding = embedding if model is None else model.get_layer("embedding")
        return embedding(x, reverse=True)
    return get("logits", lambda: keras.layers.Dense(vocab, name="logits"))(x)


def build_step_model(model: keras.Model, config: Config) -> keras.Model:
    """The inference model, from the trained model's named layers: it runs any number of
    steps from given RNN states and returns the log-probabilities and the new states.

        [tokens (batch, time), *states (batch, units)] -> [log_probs (batch, time, vocab),
                                                          *states]

    States come per layer, (h, c) for LSTM and (h,) otherwise. The recurrent layers are
    copies that also return their states, with the trained weights; the embedding and the
    softmax layers are the trained ones. Dropout is left out (inference)."""
    import keras

    from seqkit.backbones import BackboneSpec

    spec = BackboneSpec.from_config(config)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = model.get_layer("embedding")(tokens)
    state_inputs, state_outputs = [], []
    for i in range(spec.layers):
        trained = model.get_layer(f"backbone_{spec.cell}_{i}")
        states = [keras.Input(shape=(spec.units,), name=f"state_{i}_{k}")
                  for k in range(spec.state_count)]
        layer = type(trained).from_config({**trained.get_config(), "return_state": True,
                                           "return_sequences": True, "stateful": False,
                                           "name": f"step_{trained.name}"})
        x, *new_states = layer(x, initial_state=states)  # (batch, time, units)
        layer.set_weights(trained.get_weights())
        state_inputs += states
        state_outputs += new_states
    logits = _head(x, config, model.get_layer("embedding").input_dim, model=model)
    log_probs = keras.layers.Activation("log_softmax", name="log_probs")(logits)
    return keras.Model([tokens, *state_inputs], [log_probs, *state_outputs], name="lm_step")


class Stepper:
    """NumPy calls around the step model: run windows of tokens from given states."""

    def __init__(self, model, config: Config):
        """model: the trained Keras model, or the step model's ONNX graph (seqkit.graphs)."""
        from seqkit.graphs import Graph

        self.model = model if isinstance(model, Graph) else build_step_model(model, config)
        per_layer = 2 if config.cell == "lstm" else 1  # (h, c) or (h,)
        self.state_count, self.units = config.layers * per_layer, config.units

    def zero_states(self, rows: int) -> list[np.ndarray]:
        return [np.zeros((rows, self.units), dtype=np.float32)
                for _ in range(self.state_count)]

    def __call__(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """tokens (rows, time) -> log_probs (rows, time, vocab), new states."""
        out = self.model.predict_on_batch([np.asarray(tokens, dtype=np.int32), *states])
        return np.asarray(out[0]), [np.asarray(s) for s in out[1:]]

    def step(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """The decoding.Step signature: tokens (rows,) -> log_probs (rows, vocab)."""
        log_probs, states = self(np.asarray(tokens)[:, None], states)
        return log_probs[:, 0], states

    def target_log_probs(self, inputs: np.ndarray, targets: np.ndarray, window: int = 50
                         ) -> np.ndarray:
        """log P(targets[r, t] | inputs[r, :t+1]) for padded (rows, time) arrays, run window
        by window with the states carried over, so the result is that of one pass."""
        states = self.zero_states(len(inputs))
        out = np.zeros(inputs.shape, dtype=np.float64)
        progress.expect(inputs.size, unit="tokens")
        for start in range(0, inputs.shape[1], window):
            part = slice(start, start + window)
            log_probs, states = self(inputs[:, part], states)
            out[:, part] = np.take_along_axis(log_probs, targets[:, part, None], -1)[..., 0]
            progress.advance(out[:, part].size)
        return out


def export(model: keras.Model, config: Config, pre, directory) -> Path:
    """The step model as DIRECTORY/model.onnx: generate, score and evaluate run it on ONNX
    Runtime (tokens and states in, log-probabilities and states out)."""
    from seqkit import graphs

    stepper = Stepper(model, config)
    sample = [np.array([[pre.eos_id]], dtype=np.int32), *stepper.zero_states(1)]
    return graphs.export(stepper.model, Path(directory) / graphs.GRAPH_FILE, sample)
