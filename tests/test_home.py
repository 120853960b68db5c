"""The home's single-process lock (flock locks conflict between open files, so two Home
objects behave as two processes would)."""

from __future__ import annotations

import os

import pytest

from dicomsql.errors import DicomsqlError, HomeInUseError
from dicomsql.home import Home, resolve_home


def test_resolve_home_order(monkeypatch, tmp_path):
    monkeypatch.setenv("DICOMSQL_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "given") == tmp_path / "given"
    assert resolve_home() == tmp_path / "env"
    monkeypatch.delenv("DICOMSQL_HOME")
    assert resolve_home() == resolve_home("~/.dicomsql")


def test_second_holder_is_told_who_holds_the_home(tmp_path):
    first, second = Home(tmp_path), Home(tmp_path)
    first.acquire()
    first.acquire()  # idempotent
    owner = second.owner()
    assert owner.pid == os.getpid() and owner.jdbc_url is None
    with pytest.raises(
        HomeInUseError, match=rf"in use by process {os.getpid()} .*use another --home"
    ):
        second.acquire()
    first.describe(jdbc_host="127.0.0.1", jdbc_port=10001)
    assert second.owner().jdbc_url == "jdbc:hive2://127.0.0.1:10001/default"
    with pytest.raises(
        HomeInUseError, match="dicomsql sql --jdbc jdbc:hive2://127.0.0.1:10001/default"
    ):
        second.acquire()
    first.release()
    assert second.owner() is None and not first.owner_path.exists()
    second.acquire()
    assert first.owner().pid == os.getpid()
    second.release()


def test_an_unusable_home_is_a_clear_error(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(DicomsqlError, match="cannot use .* as the dicomsql home"):
        Home(not_a_folder).acquire()
