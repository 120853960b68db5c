"""Listing and opening files within data roots (pure: no Spark)."""

from __future__ import annotations

import os

import pytest

from dicomsql.errors import DicomsqlError
from dicomsql.storage import DATA_ROOTS_VARIABLE, data_roots_value, list_files, open_file


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
    assert [e.path for e in entries] == [f"file://{inside}/a/link.dcm", f"file://{inside}/a/one.dcm"]
    with open_file(f"file://{inside}/a/one.dcm") as fp:
        assert fp.read(2) == b"on" and fp.seek(0) == 0 and fp.read() == b"one"
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value([f"file://{inside}/a"]))
    entries = {e.path.rsplit("/", 1)[1]: e for e in list_files([f"file://{inside}/a"])}
    assert entries["one.dcm"].error is None
    assert entries["link.dcm"].error == "refused: the file resolves outside the data roots"
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        list_files([f"file://{inside}"])
    for escape in (f"file://{inside}/a/../../private/secret.dcm", f"file://{inside}/a/%2e%2e/%2e%2e/private/secret.dcm",
                   f"file://{inside}/a/link.dcm"):
        with pytest.raises(DicomsqlError):
            open_file(escape)


def test_uris_with_queries_or_dot_dot_are_refused(monkeypatch):
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value(["s3://bucket/data"]))
    for uri in ("s3://bucket/data/x.dcm?endpoint_override=10.0.0.1:9000", "s3://bucket/data/../other/x.dcm",
                "s3://bucket/data/%2E%2E/other/x.dcm", "s3://bucket/data/x.dcm#frag"):
        with pytest.raises(DicomsqlError, match="URIs with a query, a fragment or '..' are not accepted"):
            open_file(uri)
    with pytest.raises(DicomsqlError, match="outside the data roots"):
        open_file("s3://bucket/database/x.dcm")  # a sibling whose name starts like the root


def test_outside_paths_are_refused_before_anything_is_looked_up(tree, monkeypatch):
    inside, outside = tree
    monkeypatch.setenv(DATA_ROOTS_VARIABLE, data_roots_value([str(inside)]))
    messages = set()
    for probe in (str(outside / "secret.dcm"), str(outside / "missing.dcm"), str(outside / "sec*"), "/*/*"):
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
    assert [os.path.basename(e.path) for e in list_files([str(inside / "a" / "*.dcm")])] == ["link.dcm", "one.dcm"]
