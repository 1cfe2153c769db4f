"""Scores, as thin wrappers over the libraries that define them (scikit-learn here;
seqeval and sacrebleu for the tasks that need them). All scores are on a 0-1 scale
unless a library's convention is 0-100 (BLEU, chrF)."""

from __future__ import annotations

from typing import Sequence


def classification(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    _, _, macro_f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(macro_f1),
        "support": len(y_true),
        "per_class": {
            label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                    "support": int(s[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
    }


def format_classification(m: dict) -> str:
    """A readable report: overall scores, a per-class table, the confusion matrix."""
    labels = m["confusion_matrix"]["labels"]
    width = max([len("label"), *(len(str(x)) for x in labels)])
    lines = [f"accuracy  {m['accuracy']:.4f}", f"macro_f1  {m['macro_f1']:.4f}",
             f"examples  {m['support']}", "",
             f"{'label':<{width}}  precision  recall  f1      support"]
    for label in labels:
        c = m["per_class"][label]
        lines.append(f"{label:<{width}}  {c['precision']:.4f}     {c['recall']:.4f}  "
                     f"{c['f1']:.4f}  {c['support']}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    cell = max(width, *(len(str(v)) for row in m["confusion_matrix"]["matrix"] for v in row))
    lines.append(" " * (width + 2) + "  ".join(f"{lab:>{cell}}" for lab in labels))
    for label, row in zip(labels, m["confusion_matrix"]["matrix"]):
        lines.append(f"{label:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def entity_scores(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]],
                  scheme: str) -> dict:
    """Entity-level precision/recall/F1 (micro and per type, conlleval-compatible, through
    seqeval) and token accuracy, for tag sequences in `scheme` (see seqkit.schemes)."""
    from seqeval.metrics import classification_report

    from seqkit.schemes import to_conlleval

    true = [to_conlleval(t, scheme) for t in y_true]
    pred = [to_conlleval(p, scheme) for p in y_pred]
    report = classification_report(true, pred, output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    types = {k: v for k, v in report.items() if not k.endswith(" avg")}
    tokens = sum(len(t) for t in y_true)
    correct = sum(a == b for t, p in zip(y_true, y_pred) for a, b in zip(t, p))
    return {
        "f1": float(micro["f1-score"]),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "accuracy": correct / tokens if tokens else 0.0,
        "entities": int(micro["support"]),
        "sentences": len(y_true),
        "tokens": tokens,
        "per_type": {
            kind: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                   "f1": float(v["f1-score"]), "support": int(v["support"])}
            for kind, v in sorted(types.items())
        },
    }


def format_entities(m: dict) -> str:
    """A readable report: micro scores, token accuracy, a per-type table."""
    width = max([len("type"), *(len(k) for k in m["per_type"])])
    lines = [f"f1         {m['f1']:.4f}", f"precision  {m['precision']:.4f}",
             f"recall     {m['recall']:.4f}", f"accuracy   {m['accuracy']:.4f}  (tokens)",
             f"entities   {m['entities']}  in {m['sentences']} sentences, {m['tokens']} tokens",
             "", f"{'type':<{width}}  precision  recall  f1      support"]
    for kind, c in m["per_type"].items():
        lines.append(f"{kind:<{width}}  {c['precision']:.4f}     {c['recall']:.4f}  "
                     f"{c['f1']:.4f}  {c['support']}")
    return "\n".join(lines)
def bleu_tokenizer(references: Sequence[str], target_lang: str | None = None) -> str:
    """sacreBLEU's tokenizer for the target language: `zh` for Chinese (given, or detected
    when most references hold CJK characters), else its default `13a`."""
    if target_lang:
        return "zh" if target_lang.lower().split("-")[0] in ("zh", "cmn", "chinese") else "13a"
    from seqkit.text import has_cjk

    cjk = sum(1 for r in references if has_cjk(r))
    return "zh" if references and cjk >= len(references) / 2 else "13a"


def translation(hypotheses: Sequence[str], references: Sequence[str],
                target_lang: str | None = None) -> dict:
    """sacreBLEU corpus BLEU and chrF (0-100), with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    tokenize = bleu_tokenizer(references, target_lang)
    bleu, chrf = BLEU(tokenize=tokenize), CHRF()
    refs = [list(references)]
    bleu_score = bleu.corpus_score(list(hypotheses), refs)
    chrf_score = chrf.corpus_score(list(hypotheses), refs)
    return {"bleu": round(bleu_score.score, 2), "chrf": round(chrf_score.score, 2),
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
            "bleu_detail": str(bleu_score), "tokenize": tokenize,
            "sentences": len(hypotheses)}


def caption_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                 lowercase: bool = True) -> dict:
    """sacreBLEU corpus BLEU-1 to BLEU-4 (0-100) of one caption per image against all the
    reference captions of that image (any number per image). BLEU-n is the brevity penalty
    times the geometric mean of the 1- to n-gram precisions (max_ngram_order=n)."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} images")
    most = max((len(r) for r in references), default=0)
    # sacreBLEU takes reference streams; None marks an image with fewer references
    streams = [[refs[k] if k < len(refs) else None for refs in references]
               for k in range(most)]
    result: dict = {}
    for n in range(1, 5):
        # force: references may be pre-tokenised ("a dog ."); 13a splits "dog." the same way
        bleu = BLEU(max_ngram_order=n, lowercase=lowercase, force=True)
        scored = bleu.corpus_score(list(hypotheses), streams)
        result[f"bleu{n}"] = round(scored.score, 2)
    # hypothesis tokens over the closest reference lengths: below 1 costs the brevity penalty
    result["length_ratio"] = round(scored.sys_len / max(scored.ref_len, 1), 3)
    result["bleu_signature"] = str(bleu.get_signature())
    result["images"] = len(hypotheses)
    result["references"] = sum(len(r) for r in references)
    return result
