"""Tokenizers and the Vocabulary. Pure Python: no TensorFlow here.

Tokenizers (`--tokenizer`):
  auto        each CJK character is a token; Latin words and numbers are tokens;
              punctuation is split off ("今天天气不错!" -> 今 天 天 气 不 错 !)
  char        every non-space character is a token
  whitespace  split on whitespace

Every tokenizer returns (token, start, end) spans, so callers can map tokens back to
character offsets in the original line (NER predict needs that).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from typing import Iterable, Sequence

from seqkit.errors import ConfigError
from seqkit.subwords import SentencePiece

# CJK ideographs (with extensions and compatibility forms), kana, and full-width forms
# are written without spaces between words, so each character is its own token.
CJK_CHARS = (
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
)
_CJK = f"[{CJK_CHARS}]"
_AUTO = re.compile(
    rf"{_CJK}"  # one CJK character
    rf"|\d+(?:[.,:]\d+)*"  # a number, 3.14 or 1,000
    rf"|(?:(?!{_CJK})[^\W\d_])+(?:['’](?:(?!{_CJK})[^\W\d_])+)*"  # a word, don't
    r"|\S"  # anything else: one punctuation mark or symbol
)
_WHITESPACE = re.compile(r"\S+")
_CHAR = re.compile(r"\S")
_CJK_RE = re.compile(_CJK)

TOKENIZERS = ("auto", "char", "whitespace")
SIDE_TOKENIZERS = (*TOKENIZERS, "sentencepiece")  # a Side may also learn subwords
Span = tuple[str, int, int]


def tokenize_spans(text: str, kind: str = "auto", lowercase: bool = False) -> list[Span]:
    """Split `text` into (token, start, end) with text[start:end] the original token."""
    pattern = {"auto": _AUTO, "char": _CHAR, "whitespace": _WHITESPACE}.get(kind)
    if pattern is None:
        raise ConfigError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")
    spans = [(m.group(), m.start(), m.end()) for m in pattern.finditer(text)]
    if lowercase:
        spans = [(tok.lower(), s, e) for tok, s, e in spans]
    return spans


def tokenize(text: str, kind: str = "auto", lowercase: bool = False) -> list[str]:
    return [tok for tok, _, _ in tokenize_spans(text, kind, lowercase)]


def normalize(text: str) -> str:
    """NFKC folds full-width Latin letters and digits to ASCII (common in Chinese text)."""
    return unicodedata.normalize("NFKC", text)


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def cjk_fraction(text: str) -> float:
    """The share of non-space characters that are CJK (0 for text with none)."""
    visible = sum(1 for ch in text if not ch.isspace())
    return len(_CJK_RE.findall(text)) / visible if visible else 0.0


BIGRAM_END = "</s>"  # the bigram partner of a sequence's last token


def bigrams(tokens: Sequence[str]) -> list[str]:
    """Each token with the next one (BIGRAM_END after the last): 北京 -> 北 京, 京 </s>.
    One per token, so bigram ids line up with token ids (a feature for character-level
    Chinese, where a character alone is ambiguous)."""
    return [a + " " + b for a, b in zip(tokens, [*tokens[1:], BIGRAM_END])]


class Vocabulary:
    """Maps tokens to ids. Id 0 is padding, id 1 the unknown token, then any extra
    specials, then tokens by falling frequency (ties broken alphabetically)."""

    PAD = "<pad>"
    UNK = "<unk>"

    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [self.PAD, self.UNK]:
            raise ValueError("a vocabulary starts with <pad> and <unk>")
        self.tokens = list(tokens)
        self.index = {tok: i for i, tok in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("duplicate tokens in vocabulary")

    pad_id = 0
    unk_id = 1

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (),
    ) -> "Vocabulary":
        counts = Counter(tok for toks in token_lists for tok in toks)
        head = [cls.PAD, cls.UNK, *specials]
        for tok in head:
            counts.pop(tok, None)
        ranked = sorted(
            (tok for tok, n in counts.items() if n >= min_count),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None and max_size > 0:
            ranked = ranked[: max(0, max_size - len(head))]
        return cls(head + ranked)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def id(self, token: str) -> int:
        return self.index.get(token, self.unk_id)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        get, unk = self.index.get, self.unk_id
        return [get(tok, unk) for tok in tokens]

    def decode(self, ids: Iterable[int], skip_pad: bool = True) -> list[str]:
        return [self.tokens[i] for i in ids if not (skip_pad and i == self.pad_id)]

    def to_json(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        return cls(data["tokens"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens


_NO_SPACE_BEFORE = set(".,!?;:%)]}…-/")
_NO_SPACE_AFTER = set("([{$#-/")


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens back into text: no space next to a CJK character or full-width mark,
    before closing punctuation or after opening punctuation; a space between words."""
    out: list[str] = []
    for tok in tokens:
        if out and not _glued(out[-1], tok):
            out.append(" ")
        out.append(tok)
    return "".join(out)


def _glued(left: str, right: str) -> bool:
    a, b = left[-1], right[0]
    return (a in _NO_SPACE_AFTER or b in _NO_SPACE_BEFORE or _wide(a) or _wide(b))


def _wide(char: str) -> bool:
    """CJK characters and full-width punctuation are written without spaces around them."""
    return _CJK_RE.match(char) is not None or unicodedata.east_asian_width(char) in ("W", "F")


class Side:
    """One side of a text-to-text or image-to-text task: its tokenizer, vocabulary and length
    limit. `fit` reads vocab_size, min_count, max_vocab, max_length and length_percentile
    from a task config."""

    def __init__(self, tokenizer: str, lowercase: bool, normalize: bool, vocab: Vocabulary,
                 max_length: int, subwords: SentencePiece | None = None):
        self.tokenizer, self.lowercase, self.normalize = tokenizer, lowercase, normalize
        self.vocab, self.max_length, self.subwords = vocab, max_length, subwords

    def tokens(self, line: str) -> list[str]:
        if self.normalize:
            line = normalize(line)
        if self.subwords is not None:
            return self.subwords.encode(line.lower() if self.lowercase else line)
        return tokenize(line, self.tokenizer, self.lowercase)

    def encode(self, line: str) -> list[int]:
        return self.vocab.encode(self.tokens(line))[: self.max_length]

    def detokenize(self, ids: Sequence[int]) -> str:
        tokens = self.vocab.decode(ids)
        return self.subwords.decode(tokens) if self.subwords else detokenize(tokens)

    @classmethod
    def fit(cls, lines: Sequence[str], name: str, tokenizer: str, lowercase: bool,
            nfkc: bool, config, specials: Sequence[str] = ()) -> "Side":
        import numpy as np

        subwords = None
        if tokenizer == "sentencepiece":
            prepared = [normalize(t) if nfkc else t for t in lines]
            subwords = SentencePiece.train([t.lower() if lowercase else t for t in prepared],
                                           config.vocab_size)
        side = cls(tokenizer, lowercase, nfkc, Vocabulary(["<pad>", "<unk>"]), 0, subwords)
        token_lists = [side.tokens(t) for t in lines]
        side.vocab = Vocabulary.build(token_lists, config.min_count, config.max_vocab, specials)
        lengths = np.array([len(t) for t in token_lists])
        side.max_length = config.max_length or max(
            1, math.ceil(np.percentile(lengths, config.length_percentile)))
        logging.getLogger("seqkit").info(
            "%s: %s tokenizer, vocabulary %s, max_length %d (%s of %s sentences cut)", name,
            tokenizer, f"{len(side.vocab):,}", side.max_length,
            f"{int((lengths > side.max_length).sum()):,}", f"{len(lines):,}")
        return side

    def to_json(self) -> dict:
        return {"tokenizer": self.tokenizer, "lowercase": self.lowercase,
                "normalize": self.normalize, "max_length": self.max_length,
                "vocab": self.vocab.to_json(),
                "sentencepiece": self.subwords.to_json() if self.subwords else None}

    @classmethod
    def from_json(cls, data: dict) -> "Side":
        subwords = SentencePiece.from_json(data["sentencepiece"]) if data["sentencepiece"] \
            else None
        return cls(data["tokenizer"], data["lowercase"], data["normalize"],
                   Vocabulary.from_json(data["vocab"]), data["max_length"], subwords)
