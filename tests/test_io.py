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
