"""Caption: the caption table and image paths (safety, errors with lines), BLEU against
several references, the frozen encoder's features computed once, and the CLI (predict
streams in order, evaluate --json)."""

import csv
import json
import os
import select
import subprocess
import sys

import numpy as np
import pytest

from conftest import (interrupt_after_epoch, one_error_line, run_subprocess,
                      run_without_tensorflow)
from seqkit import images, metrics
from seqkit.errors import DataError

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}
TINY = ["--image-size", "16", "--set", "cnn_blocks=2", "--set", "cnn_filters=4", "--units",
        "8", "--set", "embedding_dim=8", "--batch-size", "8", "--seed", "1"]


def draw(path, colour, side, size=16):
    """A grey image with a coloured square on the left or the right."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (200, 200, 200))
    x = 1 if side == "left" else size // 2 + 1
    ImageDraw.Draw(image).rectangle((x, 4, x + size // 2 - 3, 11), fill=COLOURS[colour])
    image.save(path)


def write_rows(path, rows, header=("image", "caption")):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_set(folder, count, seed=0, suffix=".png"):
    """`count` images in folder/images and their rows: two captions each."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        colour, side = rng.choice(list(COLOURS)), rng.choice(["left", "right"])
        name = f"img{seed}_{i}{suffix}"
        draw(folder / "images" / name, colour, side)
        rows += [(name, f"a {colour} square on the {side}"), (name, f"{colour} on the {side}")]
    return rows


@pytest.fixture(scope="module")
def cap_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("caption")
    write_rows(d / "train.csv", make_set(d, 16, seed=1))
    write_rows(d / "valid.csv", make_set(d, 6, seed=2, suffix=".jpg"))
    return d


@pytest.fixture(scope="module")
def cap_model(cap_data, tmp_path_factory):
    from seqkit.cli import run

    out = tmp_path_factory.mktemp("cap_models") / "cap"
    code = run(["-q", "caption", "train", str(cap_data / "train.csv"), "--images",
                str(cap_data / "images"), "--valid", str(cap_data / "valid.csv"), "-o", str(out),
                "--epochs", "10", "--learning-rate", "0.02", "--patience", "10", *TINY])
    assert code == 0
    return out


# The caption table and image paths ------------------------------------------------------------
def test_captions_group_by_image_with_lines(tmp_path):
    p = write_rows(tmp_path / "c.csv", [("a.png", "one"), ("b.png", "two"), ("", ""),
                                        ("a.png", "  three  words ")])
    data = images.read_captions(p)
    assert data.names == ["a.png", "b.png"]
    assert data.captions == [["one", "three words"], ["two"]]
    assert data.lines == [[2, 5], [3]]


@pytest.mark.parametrize("name, message", [
    ("/etc/passwd", "is absolute"),
    ("C:\\\\x.png", "is absolute"),
    ("../secret.png", "leaves the --images folder"),
    ("sub/../../secret.png", "leaves the --images folder"),
])
def test_paths_outside_the_folder_are_refused(tmp_path, name, message):
    p = write_rows(tmp_path / "c.csv", [("ok.png", "fine"), (name, "bad")])
    with pytest.raises(DataError, match=message) as err:
        images.read_captions(p)
    assert str(err.value).startswith(f"{p}:3: ")


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    draw(tmp_path / "outside.png", "red", "left")
    os.symlink(tmp_path / "outside.png", tmp_path / "images" / "link.png")
    with pytest.raises(DataError, match="points outside") as err:
        images.resolve_inside(tmp_path / "images", "link.png", "c.csv", 7)
    assert str(err.value).startswith("c.csv:7: ")
    os.symlink(tmp_path / "images" / "link.png", tmp_path / "images" / "again.png")
    draw(tmp_path / "images" / "real.png", "red", "left")
    os.symlink(tmp_path / "images" / "real.png", tmp_path / "images" / "alias.png")
    assert images.resolve_inside(tmp_path / "images", "alias.png", "c.csv", 7) == \
        (tmp_path / "images" / "real.png").resolve()
    with pytest.raises(DataError, match="points outside"):
        images.resolve_inside(tmp_path / "images", "again.png", "c.csv", 7)


@pytest.mark.parametrize("rows, header, line, message", [
    ([("a.png", "ok"), ("b.png", ""), ("c.png", "ok")], ("image", "caption"), 3,
     "empty 'caption'"),
    ([("a.png", "ok"), ("", "orphan caption")], ("image", "caption"), 3, "empty 'image'"),
    ([("a.png", "ok")], ("picture", "caption"), 1, "cannot find the image column"),
])
def test_table_errors_name_the_line(tmp_path, rows, header, line, message):
    p = write_rows(tmp_path / "c.csv", rows, header)
    with pytest.raises(DataError, match=message) as err:
        images.read_captions(p)
    assert str(err.value).startswith(f"{p}:{line}: ")


def test_missing_and_corrupt_images(tmp_path, caplog):
    import logging

    rows = make_set(tmp_path, 3)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    rows += [("gone.png", "a red square on the left"), ("broken.png", "a blue square")]
    p = write_rows(tmp_path / "c.csv", rows)
    data = images.read_captions(p)
    with pytest.raises(DataError, match="'gone.png'.*no such file") as err:
        images.load_captioned(data, tmp_path / "images", 16, skip_bad=False)
    assert str(err.value).startswith(f"{p}:8: ")
    (tmp_path / "images" / "gone.png").write_bytes(b"")
    with pytest.raises(DataError, match="'gone.png'.*cannot decode") as err:
        images.load_captioned(data, tmp_path / "images", 16, skip_bad=False)
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    level = logger.level  # a quiet (-q) command run earlier in the session may have raised it
    logger.setLevel(logging.INFO)
    try:
        array, kept = images.load_captioned(data, tmp_path / "images", 16, skip_bad=True)
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)
    assert array.shape == (3, 16, 16, 3) and array.dtype == np.uint8
    assert kept.names == data.names[:3] and kept.rows == 6
    assert "skipped 2 bad images" in caplog.text


def test_bad_image_through_the_cli_is_one_error_line(cap_data, tmp_path, cli):
    p = write_rows(tmp_path / "c.csv", [("img1_0.png", "a red square"), ("nope.png", "x")])
    r = cli("caption", "train", p, "--images", cap_data / "images", "-o", tmp_path / "m")
    line = one_error_line(r)
    assert line.startswith(f"seqkit: error: {p}:3: ") and "nope.png" in line
    p = write_rows(tmp_path / "d.csv", [("/abs/x.png", "a red square")])
    line = one_error_line(cli("caption", "train", p, "--images", cap_data / "images", "-o",
                              tmp_path / "m"))
    assert line.startswith(f"seqkit: error: {p}:2: ") and "absolute" in line
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()


# BLEU ------------------------------------------------------------------------------------------
def test_bleu_uses_every_reference_of_an_image():
    # By hand: the hypothesis' 1-, 2- and 3-grams all occur in one reference or the other
    # ("left" only in the second), 2 of its 3 4-grams occur in the first; lengths 6 vs 6
    # and 7, so no brevity penalty: BLEU-4 = (1 * 1 * 1 * 2/3) ** (1/4) = 0.9036.
    hyp = ["a red circle on the left"]
    refs = [["a red circle on the right", "the red circle is on the left"]]
    both = metrics.caption_bleu(hyp, refs)
    assert [both[f"bleu{n}"] for n in range(1, 5)] == [100.0, 100.0, 100.0, 90.36]
    # with the first reference only, "left" matches nothing: BLEU-1 = 5/6
    first = metrics.caption_bleu(hyp, [refs[0][:1]])
    assert first["bleu1"] == 83.33
    # images may have different numbers of references
    mixed = metrics.caption_bleu(hyp * 2, [refs[0], refs[0][:1]])
    assert both["bleu1"] > mixed["bleu1"] > first["bleu1"]


def test_bleu_of_a_hand_checked_corpus():
    # unigrams 5/6 ("sat" unmatched), bigrams 3/5, trigrams 1/4; no brevity penalty:
    # BLEU-2 = sqrt(5/6 * 3/5) = 0.7071, BLEU-3 = (5/6 * 3/5 * 1/4) ** (1/3) = 0.5
    scores = metrics.caption_bleu(["the cat sat on the mat"],
                                  [["the cat is on the mat", "there is a cat on the mat"]])
    assert (scores["bleu1"], scores["bleu2"], scores["bleu3"]) == (83.33, 70.71, 50.0)


# Training: each image once per batch -------------------------------------------------------------
def _tiny_config(**changes):
    from seqkit import config as configlib
    from seqkit.tasks import caption

    return configlib.resolve(caption.Config, None, {
        "image_size": 16, "cnn_blocks": 2, "cnn_filters": 4, "units": 8, "embedding_dim": 8,
        "batch_size": 8, "seed": 1, **changes})


def test_batches_carry_each_image_once_with_all_its_captions(cap_data):
    from seqkit.tasks import caption

    config = _tiny_config(batch_size=4)
    read = caption.read(caption.Source(str(cap_data / "train.csv"),
                                       images_dir=str(cap_data / "images")), config)
    array, data = read.inputs, read.captions
    pre = caption.Preprocessor.fit(read, config)
    for shuffle in (True, False):
        batches = caption._batches(pre, array, data, config, shuffle, "image")
        # two captions per image: 4 captions a batch are 2 images
        assert batches.groups_per_batch == 2 and len(batches) == 8
        for epoch in range(2):
            seen, rng = [], np.random.default_rng(epoch)
            for idx in batches.batch_indices(epoch):
                images_of = [batches.columns["image"][i] for i in idx]
                inputs, targets = batches.structure(batches.make_batch(idx), rng)
                assert len(inputs["image"]) == len(set(images_of)) == 2  # each image once
                assert len(inputs["image_index"]) == len(targets) == 4  # with both captions
                rows = inputs["image"][inputs["image_index"]]
                if not shuffle:  # no augmentation: each caption gets its own image back
                    assert np.array_equal(rows, array[images_of])
                seen += images_of
            assert sorted(seen) == sorted(batches.columns["image"])  # every caption once


def test_grouped_batch_gives_the_loss_of_one_image_per_caption(cap_data):
    """Encoding each image once and gathering its map per caption is the same model as
    feeding every caption its own copy of the image."""
    from seqkit import seq2seq
    from seqkit.tasks import caption

    config = _tiny_config()
    read = caption.read(caption.Source(str(cap_data / "train.csv"),
                                       images_dir=str(cap_data / "images")), config)
    array, data = read.inputs, read.captions
    pre = caption.Preprocessor.fit(read, config)
    model = caption.build_model(config, pre)
    batches = caption._batches(pre, array, data, config, False, "image")
    inputs, targets = batches.structure(batches.make_batch(batches.batch_indices(0)[0]),
                                        None)
    assert len(inputs["image"]) < len(targets)
    copies = {"image": inputs["image"][inputs["image_index"]],
              "image_index": np.arange(len(targets), dtype=np.int32),
              "tokens": inputs["tokens"]}
    loss = seq2seq.loss()
    grouped, each = model(inputs, training=False), model(copies, training=False)
    np.testing.assert_allclose(np.asarray(grouped), np.asarray(each), rtol=1e-5, atol=1e-5)
    assert float(loss(targets, grouped)) == pytest.approx(float(loss(targets, each)), rel=1e-6)


def test_word_head_targets_are_the_words_of_all_the_images_captions(cap_data):
    from seqkit.tasks import caption

    config = _tiny_config(word_loss=0.1)
    read = caption.read(caption.Source(str(cap_data / "train.csv"),
                                       images_dir=str(cap_data / "images")), config)
    array, data = read.inputs, read.captions
    pre = caption.Preprocessor.fit(read, config)
    vocab = pre.captions.vocab
    model = caption.build_model(config, pre)
    batches = caption._batches(pre, array, data, config, False, "image")
    batch = batches.make_batch(batches.batch_indices(0)[0])
    inputs, targets = batches.structure(batch, None)
    outputs = model(inputs, training=False)
    assert outputs["words"].shape == targets["words"].shape == (len(targets["next"]),
                                                                 len(vocab))
    for row, image in enumerate(batch["image"]):
        # both captions of an image (e.g. "a red square on the left", "red on the left")
        words = {vocab.decode([i])[0] for i in np.flatnonzero(targets["words"][row])}
        assert words == {w for c in data.captions[image] for w in c.split()} | {caption.EOS}
    # the head starts from each word's share of the training images
    from seqkit.encoders import word_log_odds

    share = 1 / (1 + np.exp(-word_log_odds(pre, data)))
    reds = sum("red" in cs[0] for cs in data.captions) / len(data.captions)
    assert 0 < reds < 1 and share[vocab.id("red")] == pytest.approx(reds, abs=1e-5)
    assert share[vocab.id("square")] == pytest.approx(1 - 0.5 / len(data.captions), abs=1e-5)
    # frozen encoders learn nothing from it, so they get no head
    assert not _tiny_config(word_loss=0.1, encoder="mobilenet_v2").word_head


def test_training_with_the_word_head_resumes_and_predicts(cap_data, tmp_path, cli,
                                                          monkeypatch):
    args = ["caption", "train", str(cap_data / "train.csv"), "--images",
            str(cap_data / "images"), "--valid", str(cap_data / "valid.csv"), "-o",
            str(tmp_path / "cap"), "--set", "word_loss=0.1", "--epochs", "2", *TINY]
    undo = interrupt_after_epoch(monkeypatch, 0)
    assert cli(*args).code == 130
    undo()
    assert cli(*args, "--resume").code == 0
    summary = json.loads((tmp_path / "cap" / "metrics.json").read_text())["training"]
    assert summary["monitor"] == "val_next_loss" and len(summary["history"]) == 2
    assert {"words_loss", "next_loss"} <= set(summary["history"][1])
    result = cli("caption", "predict", str(tmp_path / "cap"), "--images",
                 str(cap_data / "images"), "img1_0.png")
    assert result.code == 0 and result.out.startswith("img1_0.png\t")


def test_shift_moves_images_by_at_most_the_given_pixels():
    image = np.zeros((1, 12, 12, 3), np.uint8)
    image[0, 6, 6] = 255  # one bright pixel in a dark image
    rng = np.random.default_rng(0)
    moved = images.shift(np.repeat(image, 50, axis=0), 2, rng)
    assert moved.shape == (50, 12, 12, 3) and moved.dtype == np.uint8
    spots = [tuple(np.argwhere(m[..., 0] == 255)[0]) for m in moved]
    assert all(abs(y - 6) <= 2 and abs(x - 6) <= 2 for y, x in spots)
    assert len(set(spots)) > 10  # a different amount per image
    assert images.shift(image, 0, rng) is image


# Training: the frozen encoder's features ------------------------------------------------------
def test_frozen_encoder_features_are_computed_once(cap_data, tmp_path, monkeypatch):
    """A frozen backbone encodes each image once; the decoder then trains on the cached
    features for every epoch, and the saved model captions images."""
    from seqkit import config as configlib, encoders, lifecycle, training
    from seqkit.tasks import caption

    calls, fitted = [], {}
    encode, fit = encoders.encode_images, training.fit

    def counting_encode(encoder, inputs, batch_size=64):
        calls.append(len(inputs))
        return encode(encoder, inputs, batch_size)

    def spying_fit(model, train, *args, **kwargs):
        fitted["inputs"] = sorted(model.input)
        fitted["layers"] = {layer.name for layer in model.layers}
        return fit(model, train, *args, **kwargs)

    monkeypatch.setattr(encoders, "encode_images", counting_encode)
    monkeypatch.setattr(training, "fit", spying_fit)
    cfg = configlib.resolve(caption.Config, None, {
        "encoder": "mobilenet_v2", "image_size": 32, "epochs": 3, "units": 8,
        "embedding_dim": 8, "batch_size": 8, "patience": 5, "seed": 1})
    assert cfg.frozen
    source = caption.Source(str(cap_data / "train.csv"), images_dir=str(cap_data / "images"))
    result = lifecycle.train(caption, source, str(tmp_path / "m"), cfg,
                             valid=caption.Source(str(cap_data / "valid.csv"),
                                                  images_dir=str(cap_data / "images")))
    assert result["training"]["epochs"] == 3
    assert calls == [16, 6]  # each image once (train, then valid), not once per epoch
    assert fitted["inputs"] == ["features", "image_index", "tokens"]
    assert "encoder" not in fitted["layers"]
    records = caption.Predictor(str(tmp_path / "m")).predict(
        [str(cap_data / "images" / "img1_0.png")], beam_size=1)
    assert records[0]["caption"] and records[0]["score"] < 0


def test_features_file_in_place_of_images(cap_data, tmp_path, cli):
    names = [f"img1_{i}.png" for i in range(16)]
    np.save(tmp_path / "feats.npy", np.random.default_rng(0).normal(size=(16, 3, 5)))
    (tmp_path / "feats.txt").write_text("\n".join(names) + "\n")
    r = cli("-q", "caption", "train", cap_data / "train.csv", "--features",
            tmp_path / "feats.npy", "-o", tmp_path / "m", "--epochs", "1", *TINY)
    assert r.code == 0, r.err
    r = cli("caption", "predict", tmp_path / "m", "img1_3.png", "img1_0.png", "--features",
            tmp_path / "feats.npy")
    assert r.code == 0, r.err
    assert [line.split("\t")[0] for line in r.out.splitlines()] == ["img1_3.png", "img1_0.png"]
    r = cli("caption", "predict", tmp_path / "m", "unknown.png", "--features",
            tmp_path / "feats.npy")
    assert "unknown.png" in one_error_line(r)


# The CLI ------------------------------------------------------------------------------------------
def test_predict_keeps_order_and_format(cap_model, cap_data, cli):
    paths = [str(cap_data / "images" / f"img2_{i}.jpg") for i in (3, 0, 5)]
    r = cli("caption", "predict", cap_model, *paths, "--batch-size", "2")
    assert r.code == 0, r.err
    rows = [line.split("\t") for line in r.out.splitlines()]
    assert [row[0] for row in rows] == paths and all(len(row) == 2 and row[1] for row in rows)
    r = cli("caption", "predict", cap_model, *paths, "--format", "jsonl", "--beam-size", "1")
    records = [json.loads(line) for line in r.out.splitlines()]
    assert [rec["image"] for rec in records] == paths
    assert all(set(rec) == {"image", "caption", "score"} and rec["score"] < 0
               for rec in records)


def test_predict_streams_stdin(cap_model, cap_data):
    """With --batch-size 1 each caption is written before the next path is read."""
    proc = subprocess.Popen([sys.executable, "-m", "seqkit", "caption", "predict",
                             str(cap_model), "--batch-size", "1", "--images",
                             str(cap_data / "images")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out = []
        for name in ["img2_1.jpg", "", "img2_4.jpg"]:
            proc.stdin.write(f"{name}\n".encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready, "no output before the input was closed"
            out.append(proc.stdout.readline().decode().rstrip("\n"))
        proc.stdin.close()
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    assert [line.split("\t")[0] for line in out] == ["img2_1.jpg", "", "img2_4.jpg"]
    assert out[1] == "\t" and out[0].split("\t")[1]


def test_predict_refuses_paths_out_of_images(cap_model, cap_data, cli):
    r = cli("caption", "predict", cap_model, "../train.csv", "--images", cap_data / "images")
    assert "leaves the --images folder" in one_error_line(r)


def test_evaluate_json(cap_model, cap_data):
    proc = run_subprocess("caption", "evaluate", str(cap_model), str(cap_data / "valid.csv"),
                          "--images", str(cap_data / "images"), "--json", "--beam-size", "2")
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert {"bleu1", "bleu2", "bleu3", "bleu4"} <= set(result)
    assert all(0 <= result[f"bleu{n}"] <= 100 for n in range(1, 5))
    assert result["images"] == 6 and result["references"] == 12 and result["beam_size"] == 2
    assert "nrefs:2" in result["bleu_signature"]


@pytest.mark.parametrize("options, attention", [
    ([], "luong"), (["--attention"], "luong"), (["--attention", "bahdanau"], "bahdanau"),
    (["--attention", "none"], "none")])
def test_attention_option_alone_means_luong(cap_data, tmp_path, cli, monkeypatch, options,
                                            attention):
    from seqkit import lifecycle

    seen = {}
    monkeypatch.setattr(lifecycle, "train", lambda task, data, out, config, **kw: seen.update(
        config=config, data=data))
    r = cli("caption", "train", cap_data / "train.csv", "--images", cap_data / "images", "-o",
            tmp_path / "m", *options)
    assert r.code == 0, r.err
    assert seen["config"].attention == attention and seen["config"].encoder == "cnn"
    assert seen["data"].images_dir == str(cap_data / "images")


def test_onnx_backend_captions_as_keras_does(cap_model, cap_data, cli):
    """Training writes encoder.onnx (image -> the decoder's start states and context) and
    decoder.onnx (one step); captions from them, in a process without TensorFlow, are
    Keras's, with scores within 1e-4 (2e-4 between the 4-decimal outputs)."""

    assert (cap_model / "encoder.onnx").is_file() and (cap_model / "decoder.onnx").is_file()
    paths = sorted(str(p) for p in (cap_data / "images").iterdir())[:6]
    for beam in ("1", "2"):
        args = ("caption", "predict", cap_model, *paths, "--format", "jsonl", "--beam-size",
                beam)
        runs = {b: [json.loads(line) for line in cli(*args, "--backend", b).out.splitlines()]
                for b in ("onnx", "keras")}
        assert len(runs["onnx"]) == len(runs["keras"]) == 6
        for a, b in zip(runs["onnx"], runs["keras"]):
            assert a["caption"] == b["caption"] and abs(a["score"] - b["score"]) <= 2e-4
    run_without_tensorflow("caption", "predict", cap_model, paths[0])


def test_evaluate_plots_attention_over_the_image(cap_model, cap_data, tmp_path):
    pytest.importorskip("matplotlib")
    from seqkit.cli import run

    code = run(["-q", "caption", "evaluate", str(cap_model), str(cap_data / "valid.csv"),
                "--images", str(cap_data / "images"), "--plots", str(tmp_path),
                "--plots-count", "2"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attention_1.png", "attention_2.png"]
    assert all(p.stat().st_size > 2000 for p in tmp_path.iterdir())
