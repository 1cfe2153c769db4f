"""Tag schemes for sequence tagging: IOB1, BIO (IOB2), BIOES and BMES. Pure Python.

A tag is `O` or PREFIX-TYPE (`B-PER`, `M-ORG`). The scheme fixes the prefixes:

    iob1   I-, and B- only where an entity directly follows one of the same type (CoNLL-2003)
    bio    B- starts every entity, I- continues it (also called IOB2)
    bioes  B- begin, I- inside, E- end, S- single-token entity
    bmes   B- begin, M- middle, E- end, S- single (Chinese corpora; BIOES with M for I)

Entity spans follow conlleval's chunk rules (as seqeval does), BMES read as BIOES.
"""

from __future__ import annotations

from typing import Iterable, Sequence

SCHEMES = ("iob1", "bio", "bioes", "bmes")
ALIASES = {"iob2": "bio", "iobes": "bioes"}
PREFIXES = {"iob1": ("B", "I"), "bio": ("B", "I"), "bioes": ("B", "I", "E", "S"),
            "bmes": ("B", "M", "E", "S")}
OUTSIDE = "O"


def canonical(scheme: str) -> str:
    """`scheme` lowercased with aliases resolved ("IOB2" -> "bio"); "auto" stays."""
    scheme = scheme.lower()
    return ALIASES.get(scheme, scheme)


def split_tag(tag: str) -> tuple[str, str] | None:
    """("B", "PER") for "B-PER", ("O", "") for "O", None when the tag has no PREFIX-TYPE form."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or len(prefix) != 1 or not kind:
        return None
    return prefix, kind


def detect(tag_seqs: Iterable[Sequence[str]]) -> str:
    """Guess the scheme from the prefixes used; tags that fit none are left to check().

    IOB1 opens entities with I- and writes B- only right after an entity of the same type;
    BIO opens every entity with B-. So one B- after O or another type rules IOB1 out (a
    stray I- after O in such a file is then a BIO error, see stray_insides), and IOB1 is
    chosen only when I- opens entities and every B- follows its own type."""
    prefixes, inside_starts, free_begins = set(), False, False
    for tags in tag_seqs:
        previous = ""
        for tag in tags:
            parts = split_tag(tag)
            if parts is None:
                continue
            prefix, kind = parts
            prefixes.add(prefix)
            if prefix == "I" and previous != kind:
                inside_starts = True  # an entity opened by I-
            if prefix == "B" and previous != kind:
                free_begins = True  # an entity opened by B-: not IOB1
            previous = kind if prefix != OUTSIDE else ""
    if "M" in prefixes:
        return "bmes"
    if prefixes & {"E", "S"}:
        return "bioes"
    return "iob1" if inside_starts and not free_begins else "bio"


def stray_insides(tags: Sequence[str]) -> list[int]:
    """Positions of BIO's ill-formed I- tags: those that open an entity (after O or
    another type). conlleval, seqeval and seqkit read each as the start of an entity."""
    out, previous = [], ""
    for i, tag in enumerate(tags):
        parts = split_tag(tag)
        if parts is None:
            previous = ""
            continue
        prefix, kind = parts
        if prefix == "I" and previous != kind:
            out.append(i)
        previous = kind if prefix != OUTSIDE else ""
    return out


def check(tag: str, scheme: str) -> str | None:
    """None when `tag` belongs to `scheme`, else what was expected instead."""
    parts = split_tag(tag)
    allowed = PREFIXES[scheme]
    if parts is not None and (parts[0] == OUTSIDE or parts[0] in allowed):
        return None
    return (f"tag {tag!r} is outside the {scheme.upper()} scheme; expected O or "
            f"{'/'.join(p + '-' for p in allowed)}TYPE")


def tag_set(types: Iterable[str], scheme: str) -> list[str]:
    """Every tag of the scheme for these entity types, O first."""
    return [OUTSIDE] + [f"{p}-{t}" for t in sorted(set(types)) for p in PREFIXES[scheme]]


def entity_types(tag_seqs: Iterable[Sequence[str]]) -> set[str]:
    return {parts[1] for tags in tag_seqs for tag in tags
            if (parts := split_tag(tag)) is not None and parts[0] != OUTSIDE}


def to_conlleval(tags: Sequence[str], scheme: str) -> list[str]:
    """The tags as conlleval/seqeval read them: BMES's M- becomes I- (BIOES)."""
    if scheme != "bmes":
        return list(tags)
    return ["I" + tag[1:] if tag.startswith("M-") else tag for tag in tags]


def entities(tags: Sequence[str], scheme: str) -> list[tuple[str, int, int]]:
    """(type, first, last + 1) token ranges of the entities in one tag sequence, by
    conlleval's chunk rules, which seqeval's get_entities (the scores) follows too: here
    without importing seqeval, whose metrics package loads scikit-learn (1.6 s of a 1.8 s
    predict); test_entities_follow_seqeval checks both agree on random sequences."""
    found, start = [], 0
    previous, previous_type = OUTSIDE, ""
    for i, tag in enumerate([*to_conlleval(tags, scheme), OUTSIDE]):
        prefix, kind = (tag, "") if tag == OUTSIDE else (tag[:1], tag[2:] or "_")
        type_changed = kind != previous_type
        if previous in ("E", "S") or (previous in ("B", "I") and prefix in ("B", "S", OUTSIDE)) \
                or (previous != OUTSIDE and type_changed):
            found.append((previous_type, start, i))
        if prefix in ("B", "S") or (previous in ("E", "S", OUTSIDE) and prefix in ("E", "I")) \
                or (prefix != OUTSIDE and type_changed):
            start = i
        previous, previous_type = prefix, kind
    return found


def from_entities(length: int, spans: Iterable[tuple[str, int, int]], scheme: str) -> list[str]:
    """`length` tags that spell out these (type, first, last + 1) entities in `scheme`."""
    tags = [OUTSIDE] * length
    previous: tuple[str, int] | None = None  # (type, end) of the entity before
    for kind, start, end in spans:
        if scheme in ("bioes", "bmes"):
            inner = "M" if scheme == "bmes" else "I"
            if end - start == 1:
                tags[start] = f"S-{kind}"
            else:
                tags[start:end] = ([f"B-{kind}"] + [f"{inner}-{kind}"] * (end - start - 2)
                                   + [f"E-{kind}"])
        else:
            first = "B" if scheme == "bio" or previous == (kind, start) else "I"
            tags[start:end] = [f"{first}-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        previous = (kind, end)
    return tags


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """The same entities, tagged in another scheme."""
    if source == target:
        return list(tags)
    return from_entities(len(tags), entities(tags, source), target)

