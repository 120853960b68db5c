"""Listing and opening files within data roots (pure: no Spark)."""

from __future__ import annotations

import os

import pytest

from dicomsql.errors import DicomsqlError, FileTooLargeError
from dicomsql.storage import (
    DATA_ROOTS_VARIABLE,
    MAX_FILE_SIZE_VARIABLE,
    check_file_size,
    data_roots_value,
    list_files,
    max_file_size,
    max_file_size_value,
    open_file,
)


@pytest.fixture
def tree(tmp_path):
    inside, outside = tmp_path / "data", tmp_path / "private"
    (inside / "a").mkdir(parents=True)
    outside.mkdir()
    (inside / "a" / "one.dcm").write_bytes(b"one")
    (inside / ".hidden.dcm").write_bytes(b"hidden")
    (outside / "secret.dcm").write_bytes(b"secret")
    os.symlink(outside / "secret.dcm", inside / "a" / "link.dcm")
    return inside, outside


def test_unconfined_lists_everything_but_hidden_files(tree, monkeypatch):
    inside, _ = tree
    monkeypatch.delenv(DATA_ROOTS_VARIABLE, raising=False)
    entries = list_files([str(inside)])
    assert [os.path.basename(e.path) for e in entries] == ["link.dcm", "one.dcm"]
    assert all(e.error is None and e.size for e in entries)


def test_data_roots_confine_listing_and_opening(tree, monkeypatch):
    inside, outside = tree
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value([str(inside)]))
    entries = {os.path.basename(e.path): e for e in list_files([str(inside)])}
    assert entries["one.dcm"].error is None
    assert entries["link.dcm"].error == "refused: the file resolves outside the data roots"
    with pytest.raises(DicomsqlError, match="outside the data roots this server reads"):
        list_files([str(outside)])
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        list_files([str(inside / ".." / "private")])
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        open_file(str(outside / "secret.dcm"))
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        open_file(str(inside / "a" / "link.dcm"))
    with open_file(str(inside / "a" / "one.dcm")) as fp:
        assert fp.read() == b"one"


def test_uris_are_listed_and_opened_through_pyarrow(tree, monkeypatch):
    inside, _ = tree
    monkeypatch.delenv(DATA_ROOTS_VARIABLE, raising=False)
    entries = list_files([f"file://{inside}"])
    assert [e.path for e in entries] == [
        f"file://{inside}/a/link.dcm",
        f"file://{inside}/a/one.dcm",
    ]
    with open_file(f"file://{inside}/a/one.dcm") as fp:
        assert fp.read(2) == b"on" and fp.seek(0) == 0 and fp.read() == b"one"
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value([f"file://{inside}/a"]))
    entries = {e.path.rsplit("/", 1)[1]: e for e in list_files([f"file://{inside}/a"])}
    assert entries["one.dcm"].error is None
    assert entries["link.dcm"].error == "refused: the file resolves outside the data roots"
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        list_files([f"file://{inside}"])
    for escape in (
        f"file://{inside}/a/../../private/secret.dcm",
        f"file://{inside}/a/%2e%2e/%2e%2e/private/secret.dcm",
        f"file://{inside}/a/link.dcm",
    ):
        with pytest.raises(DicomsqlError):
            open_file(escape)


def test_uris_with_queries_or_dot_dot_are_refused(monkeypatch):
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value(["s3://bucket/data"]))
    for uri in (
        "s3://bucket/data/x.dcm?endpoint_override=10.0.0.1:9000",
        "s3://bucket/data/../other/x.dcm",
        "s3://bucket/data/%2E%2E/other/x.dcm",
        "s3://bucket/data/x.dcm#frag",
    ):
        with pytest.raises(
            DicomsqlError, match="URIs with a query, a fragment or '..' are not accepted"
        ):
            open_file(uri)
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        open_file("s3://bucket/database/x.dcm")  # a sibling whose name starts like the root


def test_outside_paths_are_refused_before_anything_is_looked_up(tree, monkeypatch):
    inside, outside = tree
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value([str(inside)]))
    messages = set()
    for probe in (
        str(outside / "secret.dcm"),
        str(outside / "missing.dcm"),
        str(outside / "sec*"),
        "/*/*",
    ):
        with pytest.raises(DicomsqlError, match="outside the data roots") as caught:
            list_files([probe])
        messages.add(str(caught.value).replace(probe, "PATH"))
    assert len(messages) == 1  # the same answer whether or not something exists there
    assert [os.path.basename(e.path) for e in list_files([str(inside / "a" / "o*")])] == ["one.dcm"]


def test_missing_paths_and_globs(tree, monkeypatch):
    inside, _ = tree
    monkeypatch.delenv(DATA_ROOTS_VARIABLE, raising=False)
    with pytest.raises(DicomsqlError, match="does not exist"):
        list_files([str(inside / "nope")])
    with pytest.raises(DicomsqlError, match="no file matches"):
        list_files([str(inside / "*.nothing")])
    assert [os.path.basename(e.path) for e in list_files([str(inside / "a" / "*.dcm")])] == [
        "link.dcm",
        "one.dcm",
    ]


def test_max_file_size_defaults_to_2_gib_and_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(MAX_FILE_SIZE_VARIABLE, raising=False)
    assert max_file_size() == 2 * 1024**3
    monkeypatch.setenv(MAX_FILE_SIZE_VARIABLE, max_file_size_value("100MiB"))
    assert max_file_size() == 100 * 1024**2


def test_max_file_size_values():
    sizes = {
        "1000": 1000,
        "512k": 512 * 1024,
        "100MiB": 100 * 1024**2,
        "2g": 2 * 1024**3,
        "2GB": 2 * 1024**3,
        "1.5 GiB": 3 * 1024**3 // 2,
        "1t": 1024**4,
        "10b": 10,
    }
    assert {text: int(max_file_size_value(text)) for text in sizes} == sizes
    assert max_file_size_value(2 << 30) == str(2 << 30)
    for bad in ("0", "-1", "lots", "2 PB", ""):
        with pytest.raises(ValueError, match="a size must be a positive number of bytes"):
            max_file_size_value(bad)


def test_file_size_messages_say_both_sizes():
    with pytest.raises(
        FileTooLargeError,
        match=r"^file is 2.5 KiB, larger than the 100 bytes limit \(--max-file-size\)$",
    ):
        check_file_size(2560, limit=100)
    with pytest.raises(
        FileTooLargeError,
        match=r"^file is 2147483649 bytes, larger than the 2147483648 bytes limit",
    ):
        check_file_size(2**31 + 1, limit=2**31)  # both round to 2 GiB
    check_file_size(100, limit=100)


def test_limited_opening_refuses_a_file_over_the_limit_before_reading_it(tree, monkeypatch):
    inside, _ = tree
    monkeypatch.delenv(DATA_ROOTS_VARIABLE, raising=False)
    monkeypatch.setenv(MAX_FILE_SIZE_VARIABLE, "2")
    for path in (str(inside / "a" / "one.dcm"), f"file://{inside}/a/one.dcm"):
        with pytest.raises(
            FileTooLargeError, match=r"^file is 3 bytes, larger than the 2 bytes limit"
        ):
            open_file(path, limited=True)
        with open_file(path) as fp:  # headers are read without the limit
            assert fp.read() == b"one"
    monkeypatch.setenv(MAX_FILE_SIZE_VARIABLE, "3")
    with open_file(f"file://{inside}/a/one.dcm", limited=True) as fp:
        assert fp.read() == b"one"
