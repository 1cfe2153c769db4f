"""A catalogue of bad input, for every task and verb: malformed, mis-encoded and binary
files, folders where files belong and files where folders belong, damaged and foreign model
directories, absurd option values. Each case must end with its exit code (1: data, config
or model; 2: usage), exactly one stderr line `seqkit: error: ...` naming what was wrong
(the file, and its line where there is one), nothing on stdout and no traceback.

In an argument list, {M:task} is a small trained model of that task, {D:name} a damaged or
foreign model directory (made from the sentiment model), {B:name} a bad file, {G:task} a
good data file of that task and {I} the caption images folder.
"""

from __future__ import annotations

import re
import shutil

import pytest

from test_tasks import CASES

TASKS = [case.name for case in CASES]
GOOD = {"sentiment": "train.csv", "ner": "ner_en.conll", "translation": "pairs.tsv",
        "caption": "caption/train.csv", "lm": "lm_en.txt"}
# the verbs that read a data file, and how each is called
READERS = {
    "train": "{task} train {file} -o {out}",
    "evaluate": "{task} evaluate {M:task} {file}",
    "predict": "{task} predict {M:task} {file}",
}
MODEL_VERBS = {  # verbs that load a model directory: argument lists after `TASK`
    "evaluate": "evaluate {model} {G:task}",
    "predict": "predict {model} {G:task}",
    "export": "export {model}",
}


def _file_cases():
    cases = []
    for task in TASKS:
        for verb, template in READERS.items():
            if task == "caption" and verb == "predict":
                continue  # takes image paths: below
            if task == "lm" and verb == "predict":
                template = "{task} score {M:task} {file}"
            base = template.replace("{task}", task).replace("M:task", f"M:{task}")
            extra = " --images {I}" if task == "caption" and verb != "predict" else ""
            for name, fragment in (("missing.txt", "missing.txt: no such file"),
                                   ("folder", "folder: is a folder; expected a file"),
                                   ("binary.bin", "binary.bin:1:"),
                                   ("latin1.txt", "latin1.txt:1: bytes b'\\xe9"),
                                   ("nul.txt", "nul.txt:1: holds a NUL byte")):
                command = base.replace("{file}", f"{{B:{name}}}").replace("{out}", "{O}")
                cases.append((f"{task}-{verb}-{name}", command + extra, 1, fragment))
            if verb != "predict":  # an empty input to predict is no lines: no output
                command = base.replace("{file}", "{B:empty.txt}").replace("{out}", "{O}")
                cases.append((f"{task}-{verb}-empty", command + extra, 1, "empty.txt"))
    return cases


def _model_cases():
    damaged = [("missing", "{D:missing}", "no such model directory"),
               ("a-file", "{B:latin1.txt}", "is a file; expected a model directory"),
               ("empty-dir", "{D:empty}", "missing model.keras"),
               ("no-preprocessor-keys", "{D:TASK/empty-json}", "damaged preprocessor.json"),
               ("config-garbage", "{D:TASK/bad-config}", "damaged model directory"),
               ("truncated-keras", "{D:TASK/truncated} --backend keras",
                "model.keras is damaged"),
               ("graph-garbage", "{D:TASK/bad-graph} --backend onnx",
                "cannot load its ONNX graphs")]
    cases = []
    for task in TASKS:
        verbs = dict(MODEL_VERBS)
        if task == "lm":
            verbs["predict"] = "score {model} {G:task}"
            verbs["generate"] = "generate {model} -n 3"
        if task == "caption":
            verbs["predict"] = "predict {model} img1_0.png --images {I}"
            verbs["evaluate"] += " --images {I}"
        other = "ner" if task == "sentiment" else "sentiment"
        for verb, template in verbs.items():
            for name, model, fragment in [*damaged, (f"{other}-model", f"{{M:{other}}}",
                                                     f"this is a '{other}' model")]:
                if verb == "export" and name == "graph-garbage":
                    continue  # export writes the graphs anew
                if verb == "export":  # export always reads model.keras
                    model = model.replace(" --backend keras", "")
                command = f"{task} " + template.replace("{model}", model.replace("TASK", task))
                cases.append((f"{task}-{verb}-{name}", command.replace("G:task", f"G:{task}"),
                              1, fragment))
    return cases


def _option_cases():
    predicts = {"sentiment": "sentiment predict {M:sentiment} {G:sentiment}",
                "ner": "ner predict {M:ner} {G:ner}",
                "translation": "translation predict {M:translation} {G:translation}",
                "caption": "caption predict {M:caption} img1_0.png --images {I}",
                "lm": "lm score {M:lm} {G:lm}"}
    cases = []
    for task, command in predicts.items():
        for value, fragment in (("0", "0 is not in the range 1<=x<=65536"),
                                ("-3", "-3 is not in the range"),
                                ("many", "'many' is not a valid integer"),
                                ("9999999", "9999999 is not in the range")):
            cases.append((f"{task}-batch-size-{value}", f"{command} --batch-size {value}", 2,
                          f"Invalid value for '--batch-size': {fragment}"))
        evaluate = f"{task} evaluate {{M:{task}}} {{G:{task}}}" + (
            " --images {I}" if task == "caption" else "")
        cases.append((f"{task}-evaluate-batch-size-0", f"{evaluate} --batch-size 0", 2,
                      "Invalid value for '--batch-size'"))
        cases.append((f"{task}-predict-unknown-option", f"{command} --colour red", 2,
                      "No such option '--colour'"))
        cases.append((f"{task}-predict-bad-backend", f"{command} --backend torch", 2,
                      "Invalid value for '--backend'"))
    for task in ("translation", "caption"):
        for option, value, fragment in (("--beam-size", "0", "0 is not in the range 1<=x<=100"),
                                        ("--beam-size", "-1", "-1 is not in the range"),
                                        ("--beam-size", "1000", "1000 is not in the range"),
                                        ("--max-length", "-1", "-1 is not in the range")):
            cases.append((f"{task}-predict{option}{value}", f"{predicts[task]} {option} {value}",
                          2, f"Invalid value for '{option}': {fragment}"))
            cases.append((f"{task}-evaluate{option}{value}",
                          f"{task} evaluate {{M:{task}}} {{G:{task}}} {option} {value}"
                          + (" --images {I}" if task == "caption" else ""),
                          2, f"Invalid value for '{option}': {fragment}"))
    cases += [
        ("translation-n-best-0", predicts["translation"] + " --n-best 0", 2,
         "Invalid value for '--n-best'"),
        ("translation-n-best-over-beam",
         predicts["translation"] + " --n-best 4 --beam-size 2 --format jsonl", 1,
         "--n-best 4 needs a beam at least as wide"),
    ]
    generate = "lm generate {M:lm}"
    for option, value, fragment in (("--temperature", "nan", "'nan' is not a finite number"),
                                    ("--temperature", "inf", "'inf' is not a finite number"),
                                    ("--temperature", "-1", "'-1' is not a finite number"),
                                    ("--seed", "-1", "-1 is not in the range"),
                                    ("-n", "-1", "-1 is not in the range"),
                                    ("--count", "0", "0 is not in the range"),
                                    ("--top-k", "-2", "-2 is not in the range")):
        cases.append((f"lm-generate{option}{value}", f"{generate} {option} {value}", 2,
                      f"Invalid value for '{option}': {fragment}"))
    for task in TASKS:
        train = f"{task} train {{G:{task}}} -o {{O}}" + (" --images {I}"
                                                          if task == "caption" else "")
        for name, option, fragment in (
                ("units-0", "--units 0", "units"), ("epochs-0", "--epochs 0", "epochs"),
                ("dropout-1.5", "--dropout 1.5", "dropout"),
                ("negative-rate", "--learning-rate -1", "learning_rate"),
                ("unknown-key", "--set nope=1", "nope"), ("units-abc", "--set units=abc", "units"),
                ("missing-recipe", "--config {B:missing.txt}", "missing.txt"),
                ("recipe-not-toml", "--config {B:latin1.txt}", "latin1.txt"),
                ("output-under-a-file", "-o {B:latin1.txt}/m", "latin1.txt is a file"),
                ("output-exists", "-o {M:" + task + "}", "already exists")):
            cases.append((f"{task}-train-{name}", f"{train} {option}", 1, fragment))
    return cases


def _data_cases():
    """Files that read but cannot make (or score) a model."""
    return [
        ("sentiment-one-class", "sentiment train {B:one_class.csv} -o {O}", 1,
         "one_class.csv: every example has the label 'pos'"),
        ("sentiment-one-row", "sentiment train {B:one_row.csv} -o {O}", 1,
         "one_row.csv: 1 example: too few"),
        ("sentiment-no-label-column", "sentiment train {B:no_label.csv} -o {O}", 1,
         "no_label.csv:1: cannot find the label column"),
        ("sentiment-header-only", "sentiment train {B:header_only.csv} -o {O}", 1,
         "header_only.csv"),
        ("sentiment-evaluate-unseen-label", "sentiment evaluate {M:sentiment} {B:unseen.csv}",
         1, "unseen.csv:2: label 'meh' was not seen in training"),
        ("ner-no-tag-column", "ner train {B:no_tag.conll} -o {O}", 1,
         "no_tag.conll:1: found 1 column ('Mara'), expected at least 2"),
        ("ner-bad-prefix", "ner train {B:bad_prefix.conll} -o {O}", 1,
         "bad_prefix.conll:2: tag 'X-PER' is outside"),
        ("ner-evaluate-unseen-type", "ner evaluate {M:ner} {B:unseen_type.conll}", 1,
         "unseen_type.conll:1: entity type 'FOOD' was not seen in training"),
        ("translation-one-column", "translation train {B:one_column.tsv} -o {O}", 1,
         "one_column.tsv:1"),
        ("caption-image-escape", "caption train {B:escape.csv} --images {I} -o {O}", 1,
         "escape.csv:2"),
        ("caption-no-caption-column", "caption train {B:no_caption.csv} --images {I} -o {O}",
         1, "no_caption.csv:1: cannot find the caption column"),
        ("caption-predict-missing-image", "caption predict {M:caption} nothere.png --images {I}",
         1, "nothere.png"),
        ("caption-predict-image-is-text", "caption predict {M:caption} {B:latin1.txt}", 1,
         "latin1.txt"),
        ("lm-one-token", "lm train {B:one_token.txt} -o {O}", 1, "one_token.txt"),
    ]


CATALOGUE = _file_cases() + _model_cases() + _option_cases() + _data_cases()


def test_the_catalogue_is_large_and_covers_every_task_and_verb():
    ids = [case[0] for case in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 150
    for task in TASKS:
        verbs = {"train", "evaluate", "export", "predict" if task != "lm" else "score"}
        for verb in verbs:
            assert any(re.search(rf"^{task} {verb}\b", case[1]) for case in CATALOGUE), verb


@pytest.fixture(scope="module")
def world(data_dir, tmp_path_factory):
    """Trained models of every task, damaged model directories and bad files."""
    root = tmp_path_factory.mktemp("bad")
    models = {}
    for case in CASES:
        models[case.name] = root / "models" / case.name
        case.train(data_dir, models[case.name])
    bad = root / "files"
    bad.mkdir()
    (bad / "folder").mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.bin").write_bytes(bytes([0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF, 0xFE, 0x0A,
                                            0x00, 0x01, 0x02]))
    (bad / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me,pos\n".encode("latin-1"))
    (bad / "nul.txt").write_bytes(b"good\x00film,pos\n")
    (bad / "one_class.csv").write_text("text,label\n" + "a good film,pos\n" * 20)
    (bad / "one_row.csv").write_text("text,label\na good film,pos\n")
    (bad / "no_label.csv").write_text("text,stars\na good film,5\nbad,1\n")
    (bad / "header_only.csv").write_text("text,label\n")
    (bad / "unseen.csv").write_text("text,label\nso so,meh\n")
    (bad / "no_tag.conll").write_text("Mara\nQuell\n")
    (bad / "bad_prefix.conll").write_text("Mara B-PER\nQuell X-PER\n")
    (bad / "unseen_type.conll").write_text("Bread B-FOOD\nis O\n")
    (bad / "one_column.tsv").write_text("just one column here\n")
    (bad / "escape.csv").write_text("image,caption\n../../etc/passwd,a file\n")
    (bad / "no_caption.csv").write_text("image,words\nimg1_0.png,a square\n")
    (bad / "one_token.txt").write_text("word\n")
    damaged = root / "damaged"
    (damaged / "empty").mkdir(parents=True)
    for task, source in models.items():
        for name, spoil in (
                ("empty-json", lambda d: (d / "preprocessor.json").write_text("{}")),
                ("bad-config", lambda d: (d / "config.toml").write_text("[[[")),
                ("truncated", lambda d: (d / "model.keras").write_bytes(
                    (d / "model.keras").read_bytes()[:100])),
                ("bad-graph", lambda d: [p.write_bytes(b"no graph")
                                         for p in d.glob("*.onnx")])):
            shutil.copytree(source, damaged / task / name)
            spoil(damaged / task / name)
    images = data_dir / "caption" / "images"
    (root / "o").mkdir()
    good = {task: data_dir / name for task, name in GOOD.items()}
    return {"M": models, "D": damaged, "B": bad, "G": good, "I": images,
            "O": root / "o" / "out"}


def expand(command: str, world: dict) -> list[str]:
    def one(match):
        kind, name = match.group(1), match.group(2)
        if kind == "D":
            return str(world["D"] / name)
        if kind == "B":
            return str(world["B"] / name)
        return str(world[kind][name])

    command = re.sub(r"\{([MDBG]):([\w./-]+)\}", one, command)
    command = command.replace("{I}", str(world["I"])).replace("{O}", str(world["O"]))
    return command.split()


@pytest.mark.parametrize("case_id, command, code, fragment", CATALOGUE,
                         ids=[case[0] for case in CATALOGUE])
def test_bad_input_is_one_clear_line(case_id, command, code, fragment, world, cli):
    out = world["O"]
    try:
        r = cli(*expand(command, world))
        written = [p.name for p in out.parent.iterdir()] if out.parent.exists() else []
    finally:
        for path in (out, out.with_name("out.partial")):
            shutil.rmtree(path, ignore_errors=True)
    lines = r.err.strip().splitlines()
    assert r.code == code, r.err
    assert len(lines) == 1 and lines[0].startswith("seqkit: error: "), r.err
    assert "Traceback" not in r.err and r.out == ""
    where = expand(fragment, world)  # a fragment may hold paths too
    assert " ".join(where) in lines[0], lines[0]
    assert written == [], written  # nothing left behind: no model, no .partial, no lock


def test_a_second_run_into_one_directory_is_refused_at_once(world, cli):
    """While a run holds MODEL_DIR's lock (here: this process, through another open file),
    a second run into it is refused, naming the holder; the first run's files are kept."""
    import os

    from seqkit import artifacts

    out = world["O"]
    with artifacts.training_lock(out):
        (out.with_name("out.partial")).mkdir()
        r = cli("sentiment", "train", world["G"]["sentiment"], "-o", out, "--force")
        assert r.code == 1 and r.err.count("\n") == 1
        assert f"another seqkit process (pid {os.getpid()}) is training into {out}" in r.err
        assert out.with_name("out.partial").is_dir()  # not deleted by the second run
    shutil.rmtree(out.with_name("out.partial"))
    assert not out.with_name(".out.lock").exists()


def test_a_stray_inside_tag_does_not_make_a_bio_file_iob1(caplog):
    """One I- after O in a BIO file: still BIO (a B- after O rules IOB1 out), and the stray
    tag is named in a warning; a real IOB1 file is still detected."""
    import logging

    from seqkit import corpora, schemes
    from seqkit.tasks import ner

    bio = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "I-ORG", "O"], ["B-ORG", "O"]]
    iob1 = [["I-PER", "I-PER", "O", "I-LOC"], ["I-PER", "B-PER", "O"]]
    assert schemes.detect(bio) == "bio" and schemes.detect(iob1) == "iob1"
    assert schemes.stray_insides(["O", "I-ORG", "I-ORG", "B-PER", "I-LOC"]) == [1, 4]
    sentences = [corpora.Sentence(["w"] * len(tags), tags, list(range(10 * i, 10 * i + 4)))
                 for i, tags in enumerate(bio)]
    logger = logging.getLogger("seqkit")  # it does not propagate to caplog's root handler
    logger.addHandler(caplog.handler)
    try:
        ner.check_tags(sentences, "bio", "d.conll")
    finally:
        logger.removeHandler(caplog.handler)
    assert "d.conll:11: 1 I- tag open an entity in this BIO file" in caplog.text


def test_a_foreign_error_is_cut_at_a_sentence():
    from seqkit.errors import first_line

    long = "The archive is damaged. " * 20 + "\nsecond line"
    cut = first_line(ValueError(long))
    assert cut.endswith("damaged.") and len(cut) <= 300 and "second" not in cut
    assert first_line(ValueError("x" * 400)).endswith("...")
