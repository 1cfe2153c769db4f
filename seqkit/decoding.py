"""Decoding shared by translation, caption and lm: greedy search, beam search, sampling.

A decoder is given as a step function over a batch of rows:

    step(tokens, states) -> (log_probs, new_states)
        tokens     (rows,) int array: the token each row fed last
        states     list of arrays whose first axis is rows (RNN states, and constant
                   context such as encoder outputs, which step returns unchanged)
        log_probs  (rows, vocab) log-probabilities of the next token

Everything here is NumPy around that function, so it works with any model that can run
one step (a Keras step model today, another runtime later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from seqkit import progress

Step = Callable[[np.ndarray, list], tuple[np.ndarray, list]]


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    score: float  # sum of log-probabilities (EOS included when finished)
    normalized: float  # the score used for ranking (length-normalised for beams)


def _take(states: list, index: np.ndarray) -> list:
    return [s[index] for s in states]


def greedy(step: Step, states: list, rows: int, bos_id: int, eos_id: int, max_length: int
           ) -> list[Hypothesis]:
    """The most likely token at each step, for `rows` independent inputs."""
    tokens = np.full(rows, bos_id, dtype=np.int32)
    out = [[] for _ in range(rows)]
    scores = np.zeros(rows)
    done = np.zeros(rows, dtype=bool)
    for _ in range(max_length):
        log_probs, states = step(tokens, states)
        tokens = log_probs.argmax(axis=-1).astype(np.int32)
        picked = log_probs[np.arange(rows), tokens]
        scores = np.where(done, scores, scores + picked)
        for r in np.flatnonzero(~done):
            if tokens[r] == eos_id:
                done[r] = True
            else:
                out[r].append(int(tokens[r]))
        if done.all():
            break
    return [Hypothesis(o, float(s), float(s)) for o, s in zip(out, scores)]


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's length normalisation ((5 + length) / 6) ** alpha; alpha 0 turns it off."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(step: Step, states: list, rows: int, bos_id: int, eos_id: int,
                max_length: int, beam_size: int = 5, alpha: float = 0.6, n_best: int = 1
                ) -> list[list[Hypothesis]]:
    """Beam search for `rows` inputs at once; returns the n_best hypotheses of each,
    best first, ranked by score / length_penalty(length, alpha)."""
    k = beam_size
    n_best = min(n_best, k)
    states = [np.repeat(s, k, axis=0) for s in states]  # (rows * k, ...)
    tokens = np.full(rows * k, bos_id, dtype=np.int32)
    scores = np.full((rows, k), -np.inf)
    scores[:, 0] = 0.0  # all beams start equal: keep one so the first step is not k copies
    seqs: list[list[int]] = [[] for _ in range(rows * k)]
    finished: list[list[Hypothesis]] = [[] for _ in range(rows)]
    for t in range(max_length):
        log_probs, states = step(tokens, states)
        vocab = log_probs.shape[-1]
        total = scores.reshape(-1, 1) + log_probs  # (rows * k, vocab)
        total = total.reshape(rows, k * vocab)
        top = np.argpartition(-total, kth=min(2 * k, k * vocab) - 1, axis=1)[:, : 2 * k]
        new_scores = np.full((rows, k), -np.inf)
        origin = np.zeros((rows, k), dtype=np.int64)
        new_tokens = np.zeros((rows, k), dtype=np.int32)
        for r in range(rows):
            order = top[r][np.argsort(-total[r, top[r]], kind="stable")]
            filled = 0
            for flat in order:
                value = total[r, flat]
                if not np.isfinite(value) or filled == k:
                    break
                beam, token = divmod(int(flat), vocab)
                if token == eos_id:
                    toks = seqs[r * k + beam]
                    finished[r].append(Hypothesis(
                        list(toks), float(value),
                        float(value) / length_penalty(len(toks) + 1, alpha)))
                    continue
                new_scores[r, filled] = value
                origin[r, filled] = r * k + beam
                new_tokens[r, filled] = token
                filled += 1
        # keep a row's k best finished; stop the row once its k-th best finished beats
        # anything its live beams could still reach (a score only falls as tokens are
        # added, and the length penalty is at most that of max_length)
        best_penalty = length_penalty(max_length + 1, max(alpha, 0.0))
        for r in range(rows):
            finished[r] = sorted(finished[r], key=lambda h: -h.normalized)[:k]
            if len(finished[r]) >= k and (
                    new_scores[r].max() / best_penalty <= finished[r][-1].normalized):
                new_scores[r] = -np.inf
        scores = new_scores
        flat_origin = origin.reshape(-1)
        seqs = [seqs[o] + [int(tok)] for o, tok in zip(flat_origin, new_tokens.reshape(-1))]
        states = _take(states, flat_origin)
        tokens = new_tokens.reshape(-1)
        if not np.isfinite(scores).any():
            break
    results = []
    for r in range(rows):
        ranked = sorted(finished[r], key=lambda h: -h.normalized)[:n_best]
        if len(ranked) < n_best:  # out of length: live beams fill up, after finished ones
            live = [Hypothesis(list(seqs[r * k + b]), float(scores[r, b]),
                               float(scores[r, b]) / length_penalty(len(seqs[r * k + b]), alpha))
                    for b in range(k) if np.isfinite(scores[r, b])]
            ranked += sorted(live, key=lambda h: -h.normalized)[: n_best - len(ranked)]
        results.append(ranked)
    return results


def sample(step: Step, states: list, tokens: np.ndarray, steps: int, *,
           temperature: float = 1.0, top_k: int = 0, rng: np.random.Generator,
           banned: Sequence[int] = ()) -> Iterator[np.ndarray]:
    """Draw `steps` tokens for each row, yielding the (rows,) array of each step as soon as
    it is drawn (so text can be streamed). temperature 0 means greedy; top_k 0 means the
    whole vocabulary; `banned` ids (padding, unknown) are never drawn."""
    tokens = np.asarray(tokens, dtype=np.int32)
    for _ in range(steps):
        log_probs, states = step(tokens, states)
        log_probs = np.array(log_probs, dtype=np.float64)
        if banned:
            log_probs[:, list(banned)] = -np.inf
        if temperature <= 0:
            tokens = log_probs.argmax(axis=-1).astype(np.int32)
        else:
            logits = log_probs / temperature
            if 0 < top_k < logits.shape[-1]:
                kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]
                logits = np.where(logits < kth, -np.inf, logits)
            logits -= logits.max(axis=-1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=-1, keepdims=True)
            cumulative = probs.cumsum(axis=-1)
            draws = rng.random((len(tokens), 1))
            tokens = np.minimum((cumulative < draws).sum(axis=-1),
                                probs.shape[-1] - 1).astype(np.int32)
        yield tokens


class StepDecoder:
    """The step model as a `Step` in NumPy, and greedy or beam search with it.

    States passed around are [*decoder states, *context]; step returns the context as is.
    `banned` ids (padding, unknown, start of sentence) are never produced.
    """

    def __init__(self, step_model, state_count: int, banned: Sequence[int]):
        """step_model: a Keras model (run as a tf.function), or its ONNX graph
        (seqkit.graphs.Graph, run on ONNX Runtime: no TensorFlow)."""
        from seqkit.graphs import Graph

        self.step_model, self.state_count, self.banned = step_model, state_count, list(banned)
        if isinstance(step_model, Graph):
            self._step = lambda *xs: step_model.predict_on_batch(list(xs))
            return
        import tensorflow as tf

        spec = [tf.TensorSpec(t.shape, t.dtype) for t in step_model.inputs]
        self._step = tf.function(lambda *xs: step_model(list(xs), training=False),
                                 input_signature=spec)

    def step(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        n = self.state_count
        out = self._step(tokens.reshape(-1, 1).astype(np.int32), *states)
        logits = np.asarray(out[0])[:, 0, :].astype(np.float64)
        logits[:, self.banned] = -np.inf
        log_probs = logits - logits.max(axis=-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
        return log_probs, [np.asarray(s) for s in out[1:]] + states[n:]

    def search(self, states: list, rows: int, bos: int, eos: int, limit: int,
               beam_size: int = 1, n_best: int = 1, alpha: float = 0.6
               ) -> list[list[Hypothesis]]:
        """The n_best hypotheses of each row, best first (greedy when beam_size <= 1)."""
        if beam_size <= 1:
            return [[h] for h in greedy(self.step, states, rows, bos, eos, limit)]
        return beam_search(self.step, states, rows, bos, eos, limit,
                                    beam_size=beam_size, alpha=alpha, n_best=n_best)


class Captioner:
    """Captions a batch of images (or feature maps): `start` maps it to the decoder's start
    states and context (a Keras model or an ONNX graph), and a StepDecoder searches."""

    def __init__(self, start: Callable, decoder: StepDecoder, bos: int, eos: int,
                 alpha: float = 0.6):
        self.start, self.decoder = start, decoder
        self.bos, self.eos, self.alpha = bos, eos, alpha

    def search(self, inputs: np.ndarray, limit: int, beam_size: int = 1, n_best: int = 1,
               batch_size: int = 64) -> list[list[Hypothesis]]:
        """For each image (or feature map), its n_best hypotheses of at most `limit`
        tokens, best first (greedy when beam_size is 1)."""
        results = []
        progress.expect(len(inputs))
        for first in range(0, len(inputs), batch_size):
            batch = np.asarray(inputs[first:first + batch_size], dtype=np.float32)
            out = self.start(batch)
            states = [np.asarray(s) for s in (out if isinstance(out, (list, tuple)) else [out])]
            results += self.decoder.search(states, len(batch), self.bos, self.eos, limit,
                                           beam_size, n_best, self.alpha)
            progress.advance(len(batch))
        return results
