import io as pyio

import pytest

from seqkit import io
from seqkit.errors import DataError


def write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def test_reads_csv_and_detects_columns(tmp_path):
    p = write(tmp_path / "a.csv", b'review,sentiment\n"good, really",pos\nbad,neg\n')
    assert io.read_text_label(p) == (["good, really", "bad"], ["pos", "neg"], [2, 3])


def test_tsv_by_extension_bom_and_named_columns(tmp_path):
    p = write(tmp_path / "a.tsv", "\ufeffid\tbody\ty\n1\t好\t1\n2\t差\t0\n".encode())
    texts, labels, _ = io.read_text_label(p, text_column="body", label_column="y")
    assert texts == ["好", "差"] and labels == ["1", "0"]


def test_sep_from_header_when_extension_says_nothing(tmp_path):
    p = write(tmp_path / "a.txt", b"text\tlabel\nhello, world\t1\n")
    assert io.read_text_label(p)[0] == ["hello, world"]


def test_other_encoding(tmp_path):
    p = write(tmp_path / "gbk.csv", "text,label\n很好,1\n".encode("gbk"))
    with pytest.raises(DataError, match=r"gbk.csv:2: .*not valid utf-8.*--encoding"):
        io.read_text_label(p)
    assert io.read_text_label(p, encoding="gbk")[0] == ["很好"]


def test_missing_columns_are_listed(tmp_path):
    p = write(tmp_path / "a.csv", b"words,y\nhi,1\n")
    with pytest.raises(DataError) as err:
        io.read_text_label(p)
    assert "a.csv:1:" in str(err.value) and "'words', 'y'" in str(err.value)
    with pytest.raises(DataError, match="no column 'body'"):
        io.read_text_label(p, text_column="body")


def test_ragged_and_empty_files(tmp_path):
    p = write(tmp_path / "r.csv", b"text,label\nok,1\nbad,1,extra\n")
    with pytest.raises(DataError, match=r"r.csv:3: found 3 fields, expected 2"):
        io.read_text_label(p)
    p = write(tmp_path / "short.csv", b"text,label\nok,1\n\nno label here\n")
    with pytest.raises(DataError, match=r"short.csv:4: empty label"):
        io.read_text_label(p)
    p = write(tmp_path / "e.csv", b"")
    with pytest.raises(DataError, match="e.csv: file is empty"):
        io.read_text_label(p)
    p = write(tmp_path / "h.csv", b"text,label\n")
    with pytest.raises(DataError, match="no rows"):
        io.read_text_label(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        io.read_text_label(str(tmp_path / "nope.csv"))


def test_iter_texts_keeps_empty_lines_and_chunks(tmp_path):
    p = write(tmp_path / "in.txt", "a\n\n中文\r\nb".encode())
    assert list(io.iter_texts(p, chunk_size=2)) == [["a", ""], ["中文", "b"]]


def test_iter_texts_from_table(tmp_path):
    p = write(tmp_path / "in.csv", b"id,content\n1,hello\n2,\n3,bye\n")
    assert [t for c in io.iter_texts(p, chunk_size=2) for t in c] == ["hello", "", "bye"]


def test_iter_texts_bad_bytes_name_the_line(tmp_path):
    p = write(tmp_path / "in.txt", b"ok\nok\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"in.txt:3:"):
        list(io.iter_texts(p))


@pytest.mark.parametrize("fmt, expected", [
    ("jsonl", '{"label": "正", "p": 0.5}\n'),
    ("tsv", "正\t0.5\n"),
    ("csv", "label,p\n正,0.5\n"),
])
def test_record_writer(fmt, expected):
    out = pyio.StringIO()
    io.RecordWriter(out, fmt, ["label", "p"]).write_all([{"label": "正", "p": 0.5}])
    assert out.getvalue() == expected


def test_unclosed_quote_names_its_line(tmp_path):
    p = write(tmp_path / "q.csv", b'text,label\nok,1\nfine,0\n"unclosed,1\nok,0\n')
    with pytest.raises(DataError, match=r"q.csv:4: a quote opened here is never closed"):
        io.read_text_label(p)


def test_pipe_reader_joins_lines_split_across_reads():
    import os

    from seqkit.io import PipeReader

    r, w = os.pipe()
    for piece in (b"ab", b"c\nde", b"\n", b"tail"):
        os.write(w, piece)
    os.close(w)
    reader = PipeReader(r, close=True)
    assert reader.ready()
    assert [reader.readline() for _ in range(4)] == [b"abc\n", b"de\n", b"tail", b""]
    reader.close()


def test_lines_from_a_pipe_are_handed_out_when_it_pauses(tmp_path):
    """`tail -f log | seqkit ... predict`: what has come is answered once the input pauses,
    not when a chunk of 1,024 lines is full or the input ends."""
    import os
    import threading

    from seqkit.io import iter_lines

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    first_read = threading.Event()

    def write():
        with open(fifo, "w") as out:
            out.write("a\nb\n")
            out.flush()
            first_read.wait(10)  # if the reader waits for more, it gets it all in one chunk
            out.write("c\n")

    writer = threading.Thread(target=write)
    writer.start()
    chunks = iter_lines(str(fifo), chunk_size=1024)
    first = next(chunks)
    first_read.set()
    rest = list(chunks)
    writer.join()
    assert first == ["a", "b"] and rest == [["c"]]


def test_a_file_is_still_read_in_full_chunks(tmp_path):
    from seqkit.io import iter_lines

    path = tmp_path / "lines.txt"
    path.write_text("".join(f"{i}\n" for i in range(10)))
    assert [len(c) for c in iter_lines(str(path), chunk_size=4)] == [4, 4, 2]


@pytest.fixture
def seqkit_log(caplog):
    """The records of the "seqkit" logger (which a CLI run earlier may have made quiet)."""
    import logging

    logger = logging.getLogger("seqkit")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's handler is on the root logger too
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)
    logger.propagate = propagate


def test_a_line_over_the_cap_is_cut_with_one_warning_and_the_next_is_intact(tmp_path,
                                                                             seqkit_log):
    """Predict keeps a line's first max_line_bytes, never half a character, and skips the
    rest unread; one warning at the end counts the lines cut. A line that fits but for its
    CR LF is not cut."""
    p = write(tmp_path / "long.txt", b"short\n" + "\u00e9".encode() * 40 + b"\nnext\r\n"
              + b"x" * 15 + b"\r\n" + b"\n" + b"y" * 100)
    lines = [line for chunk in io.iter_lines(p, max_line_bytes=15) for line in chunk]
    assert lines == ["short", "\u00e9" * 7, "next", "x" * 15, "", "y" * 15]
    assert [r.getMessage() for r in seqkit_log.records] == [
        f"{p}: 2 lines longer than 15 bytes were cut to their first 15 bytes (the rest was "
        "skipped)"]
    assert [line for chunk in io.iter_lines(p) for line in chunk][1] == "\u00e9" * 40


def test_a_cut_csv_row_closes_its_quote_so_the_next_row_stays_a_row(tmp_path, seqkit_log):
    p = write(tmp_path / "t.csv", b'text,label\n"a, ' + b"b" * 40 + b'",1\nnext,0\n'
              b'"two\nlines",1\n')
    texts = [t for chunk in io.iter_texts(p, max_line_bytes=12) for t in chunk]
    assert texts == ["a, " + "b" * 8, "next", "two\nlines"]
    assert "1 line longer than 12 bytes was cut" in seqkit_log.text


def test_pipe_reader_hands_out_a_long_line_in_parts():
    import os

    from seqkit.io import PipeReader

    r, w = os.pipe()
    os.write(w, b"abcdefgh\nij\n")
    os.close(w)
    reader = PipeReader(r, close=True)
    assert [reader.readline(3) for _ in range(4)] == [b"abc", b"def", b"gh\n", b"ij\n"]
    assert reader.readline(3) == b""
    reader.close()


def test_a_long_line_from_a_pipe_is_cut_without_being_held(tmp_path):
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write_long():
        with open(fifo, "wb") as out:
            out.write(b"\xe4\xb8\xad" * 300_000 + b"\nafter\n")  # 900 kB of 中

    writer = threading.Thread(target=write_long)
    writer.start()
    stream = io.open_text(str(fifo), max_line_bytes=1000)
    lines = list(stream)
    writer.join()
    stream.raw.close()
    assert lines == ["\u4e2d" * 333 + "\n", "after\n"] and stream.cut_lines == 1
    assert len(stream.raw.buffer) <= 2 * stream.raw.BLOCK  # read past, not kept


def test_every_predict_help_says_what_happens_to_long_lines(cli):
    from seqkit.tasks import lm, ner

    assert io.MAX_LINE_BYTES == 1 << 20 and ner.WINDOW == 512 and ner.CONTEXT == 32
    assert lm.SCORE_WINDOW == 50  # the figures the help texts give
    helps = {task: " ".join(cli(task, command, "--help").out.split()) for task, command in [
        ("sentiment", "predict"), ("ner", "predict"), ("translation", "predict"),
        ("caption", "predict"), ("lm", "score")]}
    for task, text in helps.items():
        assert "longer than 1 MiB is cut" in text, task
    assert "windows of 512 tokens that overlap by 64" in helps["ner"]
    assert "50 tokens at a time" in helps["lm"]
