"""Subword tokenisation through sentencepiece, trained on the training data.

The trained model is kept as bytes (base64 in preprocessor.json), so a model directory
carries its own tokenizer. Pure Python around the sentencepiece library: no TensorFlow.

    sp = SentencePiece.train(["the cat sat", ...], vocab_size=8000)
    sp.encode("the cat") -> ["▁the", "▁cat"];  sp.decode(["▁the", "▁cat"]) -> "the cat"
"""

from __future__ import annotations

import base64
import io
from typing import Iterable, Sequence

from seqkit.errors import ConfigError


class SentencePiece:
    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.processor = spm.SentencePieceProcessor(model_proto=model_bytes)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, *, model_type: str = "unigram",
              character_coverage: float = 0.9995) -> "SentencePiece":
        """Train on `texts`; on small data the vocabulary may come out smaller than asked."""
        import sentencepiece as spm

        if vocab_size < 8:
            raise ConfigError(f"vocab_size must be >= 8 for sentencepiece, got {vocab_size}")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise ConfigError("sentencepiece needs some non-empty training text")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage,
            hard_vocab_limit=False,  # small corpora: fewer pieces rather than an error
            bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1,
            minloglevel=2, num_threads=1)
        return cls(model.getvalue())

    def encode(self, text: str) -> list[str]:
        return self.processor.encode(text, out_type=str)

    def decode(self, pieces: Sequence[str]) -> str:
        return self.processor.decode_pieces(list(pieces))

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def to_json(self) -> str:
        return base64.b64encode(self.model_bytes).decode("ascii")

    @classmethod
    def from_json(cls, data: str) -> "SentencePiece":
        return cls(base64.b64decode(data))
