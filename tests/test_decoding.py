"""Greedy, beam search and sampling against a tiny hand-made decoder with known answers."""

import itertools

import numpy as np
import pytest

from seqkit.decoding import beam_search, greedy, length_penalty, sample

BOS, EOS = 1, 2


def markov_step(table):
    """A decoder whose next-token distribution depends only on the last token;
    `states` carries a per-row counter to check that states follow their beams."""
    log_table = np.log(np.asarray(table, dtype=np.float64) + 1e-12)

    def step(tokens, states):
        (count,) = states
        return log_table[tokens], [count + 1]

    return step


# vocabulary: 0 pad, 1 BOS, 2 EOS, 3 "a", 4 "b"
TABLE = [
    [0, 0, 1, 0, 0],
    [0, 0, 0.0, 0.6, 0.4],  # after BOS: a .6, b .4
    [0, 0, 1, 0, 0],
    [0, 0, 0.5, 0.1, 0.4],  # after a: EOS .5, a .1, b .4
    [0, 0, 0.05, 0.0, 0.95],  # after b: mostly b again, rarely EOS
]


def brute_force_best(table, max_length, alpha):
    log_table = np.log(np.asarray(table) + 1e-12)
    best = None
    for n in range(0, max_length):
        for body in itertools.product([3, 4], repeat=n):
            seq = [BOS, *body, EOS]
            score = sum(log_table[a, b] for a, b in zip(seq, seq[1:]))
            norm = score / length_penalty(n + 1, alpha)
            if best is None or norm > best[0]:
                best = (norm, list(body))
    return best


def test_greedy_follows_the_argmax():
    (hyp,) = greedy(markov_step(TABLE), [np.zeros(1)], 1, BOS, EOS, max_length=10)
    assert hyp.tokens == [3]  # BOS -> a (.6) -> EOS (.5)
    assert hyp.score == pytest.approx(np.log(0.6) + np.log(0.5))


def test_beam_search_finds_the_exhaustive_best():
    for alpha in (0.0, 1.0):
        norm, body = brute_force_best(TABLE, 4, alpha)
        (hyps,) = beam_search(markov_step(TABLE), [np.zeros(1)], 1, BOS, EOS, max_length=5,
                              beam_size=8, alpha=alpha)
        assert hyps[0].tokens == body
        assert hyps[0].normalized == pytest.approx(norm, abs=1e-6)


def test_beam_beats_greedy_where_greedy_is_short_sighted():
    # after BOS, "a" looks better (.55) but every continuation of "a" is poor;
    # "b" then EOS has probability .45 * .9 = .405 > .55 * .5
    table = [[0, 0, 1, 0, 0], [0, 0, 0, 0.55, 0.45], [0, 0, 1, 0, 0],
             [0, 0, 0.5, 0.25, 0.25], [0, 0, 0.9, 0.05, 0.05]]
    (g,) = greedy(markov_step(table), [np.zeros(1)], 1, BOS, EOS, 10)
    (b,) = beam_search(markov_step(table), [np.zeros(1)], 1, BOS, EOS, 10, beam_size=2,
                       alpha=0.0)
    assert g.tokens == [3] and b[0].tokens == [4]
    assert b[0].score > g.score


def test_early_weak_finished_hypotheses_do_not_end_the_search():
    # with beam 2, "a" then EOS and "b" then EOS finish at step 2 while "b a" is still
    # live; the search must go on and find "b a" EOS (.73 * .52 * .97), the best
    table = [[0, 0, .24, .03, .73], [0, 0, .02, .26, .72], [0, 0, .67, .07, .26],
             [0, 0, .97, 0, .03], [0, 0, .32, .52, .16]]
    for alpha in (0.0, 1.0):
        _, body = brute_force_best(table, 4, alpha)
        (hyps,) = beam_search(markov_step(table), [np.zeros(1)], 1, BOS, EOS, 5, beam_size=2,
                              alpha=alpha, n_best=2)
        assert body == [4, 3] and hyps[0].tokens == body


def test_beam_search_batches_rows_and_returns_n_best():
    out = beam_search(markov_step(TABLE), [np.zeros(3)], 3, BOS, EOS, 6, beam_size=3,
                      alpha=0.0, n_best=3)
    assert len(out) == 3 and all(len(h) == 3 for h in out)
    assert out[0][0].tokens == out[1][0].tokens == out[2][0].tokens == [3]
    assert len({tuple(h.tokens) for h in out[1]}) == 3
    # a finished hypothesis outranks an unfinished one cut off at max_length, even one
    # with a higher raw score ("b b b b b b": .4 * .95 ** 5 > .6 * .5)
    assert out[1][-1].tokens == [4] * 6 and out[1][-1].score > out[1][0].score


def test_sampling_is_seeded_and_respects_top_k():
    step = markov_step(TABLE)
    draw = lambda seed, **kw: np.stack(list(sample(  # noqa: E731
        step, [np.zeros(4)], np.full(4, BOS), 6, rng=np.random.default_rng(seed), **kw)))
    np.testing.assert_array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))
    greedy_rows = draw(0, top_k=1)
    assert (greedy_rows[0] == 3).all()  # top-1 after BOS is always "a"
    assert (draw(0, temperature=0)[0] == 3).all()
    assert not (draw(0, banned=[3])[0] == 3).any()
