"""The README's sample jobs, run with the default settings: each model must visibly learn.

Slow (minutes): `python -m pytest -m slow`. Run it after changing a task's defaults; the
unit tests pin their own settings, so a default that stops the samples learning (as lr
decay once did for ner) passes them.
"""

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"

pytestmark = pytest.mark.slow

# (task, train arguments, test file, evaluate arguments, JSON key, check)
SAMPLES = [
    ("sentiment", ["sentiment_en.tsv"], "sentiment_en_test.tsv", [], "accuracy",
     lambda v: v >= 0.8),
    ("sentiment", ["sentiment_zh.csv"], "sentiment_zh_test.csv", [], "accuracy",
     lambda v: v >= 0.8),
    ("ner", ["ner_en.conll"], "ner_en_test.conll", [], "f1", lambda v: v >= 0.7),
    ("ner", ["ner_zh.bmes"], "ner_zh_test.bmes", [], "f1", lambda v: v >= 0.7),
    ("translation", ["translation_en_zh.tsv"], "translation_en_zh_test.tsv", [], "bleu",
     lambda v: v >= 15),
    ("caption", ["caption_train.csv", "--images", "caption_images", "--batch-size", "8"],
     "caption_test.csv", ["--images", "caption_images"], "bleu4", lambda v: v >= 60),
    # the sample's character unigram perplexity is 57
    ("lm", ["lm_zh.txt"], "lm_zh.txt", [], "perplexity", lambda v: v <= 10),
]


def _in_data(args):
    return [str(DATA / a) if (DATA / a).exists() else a for a in args]


@pytest.mark.parametrize("task,train,test,evaluate,key,check", SAMPLES,
                         ids=[f"{s[0]}-{s[1][0]}" for s in SAMPLES])
def test_sample_job_learns(task, train, test, evaluate, key, check, cli, tmp_path):
    model = tmp_path / "model"
    r = cli("-q", task, "train", *_in_data(train), "-o", model)
    assert r.code == 0, r.err
    r = cli(task, "evaluate", model, DATA / test, *_in_data(evaluate), "--json")
    assert r.code == 0, r.err
    value = json.loads(r.out)[key]
    assert check(value), f"{task} on {train[0]}: {key} {value}"
