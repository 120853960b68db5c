"""``dicomsql shell``: the interactive SQL shell, embedded or through a server.

What ``spark-sql`` is for plain Spark (which cannot load Python functions): statements end
with ``;`` and may span lines (split with sqlglot, so a ``;`` inside a string, a comment or a
``BEGIN ... END`` block does not end one), results print as tables with the query time,
history persists in the home, Tab completes keywords, tables, columns and the SQL functions,
and Ctrl-C cancels the running query (or drops the statement being typed) without leaving.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from .errors import QueryCancelled, QueryError
from .results import format_table
from .sqltools import take_statements

__all__ = ["Shell", "Completer"]

PROMPT = "dicomsql> "
CONTINUATION = "       -> "
HISTORY_LENGTH = 2000

#: Words completed besides the catalogue's names.
KEYWORDS = (
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "HAVING",
    "LIMIT",
    "JOIN",
    "LEFT JOIN",
    "CROSS JOIN",
    "LATERAL",
    "USING",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "UNION ALL",
    "WITH",
    "CREATE",
    "TABLE",
    "TEMPORARY VIEW",
    "OR REPLACE",
    "DROP",
    "IF EXISTS",
    "INSERT INTO",
    "DESCRIBE",
    "SHOW TABLES",
    "SHOW FUNCTIONS",
    "EXPLAIN",
    "struct",
    "map",
    "array",
    "count",
    "sum",
    "avg",
    "min",
    "max",
)


class Completer:
    """Tab completion over keywords, the session's tables and their columns, and the SQL
    functions; the catalogue is read lazily and again after statements that may change it."""

    def __init__(self, execute: Callable[[str], Any], functions: Iterable[str]) -> None:
        self.execute = execute
        self.functions = sorted(functions)
        self._names: list[str] | None = None
        self._matches: list[str] = []

    def invalidate(self) -> None:
        """Forget the catalogue (after CREATE, DROP, ALTER...)."""
        self._names = None

    def names(self) -> list[str]:
        """Keywords, functions, tables and columns, read from the session once."""
        if self._names is None:
            tables = self._tables()
            columns = {column for table in tables for column in self._columns(table)}
            self._names = sorted({*KEYWORDS, *self.functions, *tables, *columns})
        return self._names

    def _tables(self) -> list[str]:
        try:
            return [row[1] for row in self.execute("SHOW TABLES").rows]
        except QueryError:
            return []

    def _columns(self, table: str) -> list[str]:
        try:
            rows = self.execute(f"DESCRIBE `{table.replace('`', '``')}`").rows
        except QueryError:
            return []
        names = []
        for row in rows:
            if not row[0] or row[0].startswith("#"):
                break
            names.append(row[0])
        return names

    def candidates(self, text: str) -> list[str]:
        """The names starting with ``text`` (case-insensitive).

        >>> from dicomsql.client import QueryResult
        >>> Completer(lambda sql: QueryResult([], []), ["dicom_tag", "dicom_pixels"]).candidates("DICOM_P")
        ['dicom_pixels']
        """
        prefix = text.lower()
        return [name for name in self.names() if name.lower().startswith(prefix)]

    def complete(self, text: str, state: int) -> str | None:
        """The ``readline`` completer protocol."""
        if state == 0:
            self._matches = self.candidates(text)
        return self._matches[state] if state < len(self._matches) else None


class Shell:
    """Read statements, run them with ``client`` (an embedded or JDBC client), print the
    results. ``history`` is the file readline keeps the history in (None: no history)."""

    def __init__(
        self,
        client: Any,
        functions: Iterable[str],
        history: Path | None = None,
        out: TextIO = sys.stdout,
        max_rows: int = 1000,
    ) -> None:
        self.client = client
        self.out = out
        self.max_rows = max_rows
        self.history = history
        self.completer = Completer(client.execute, functions)

    def run(self) -> int:
        """The read-run-print loop, until end of input (Ctrl-D) or ``quit;``/``exit;``."""
        self._set_up_readline()
        buffer = ""
        try:
            while True:
                try:
                    line = input(CONTINUATION if buffer.strip() else PROMPT)
                except EOFError:
                    print(file=self.out)
                    return 0
                except KeyboardInterrupt:  # drop the statement being typed
                    print("^C", file=self.out)
                    buffer = ""
                    continue
                buffer = f"{buffer}\n{line}" if buffer else line
                statements, buffer = take_statements(buffer)
                for statement in statements:
                    if statement.text.strip().rstrip(";").lower() in ("quit", "exit"):
                        return 0
                    self.run_statement(statement.text)
                if not buffer.strip():
                    buffer = ""
        finally:
            self._save_history()

    def run_statement(self, text: str) -> None:
        """Run one statement and print its rows and time, or its error."""
        started = time.monotonic()
        try:
            result = self._execute(text)
        except QueryCancelled:
            print(f"Cancelled after {time.monotonic() - started:.2f}s.", file=self.out)
            return
        except QueryError as exc:
            print(f"Error: {exc}", file=self.out)
            return
        seconds = time.monotonic() - started
        if result.columns:
            shown = result.rows[: self.max_rows]
            print(format_table(result.columns, shown), file=self.out)
            more = f" (first {self.max_rows} shown)" if len(result.rows) > self.max_rows else ""
            print(f"{len(shown)} row(s){more} in {seconds:.2f}s", file=self.out)
        else:
            print(f"OK in {seconds:.2f}s", file=self.out)
        if text.split(None, 1)[0].upper() in ("CREATE", "DROP", "ALTER", "USE", "CACHE", "UNCACHE"):
            self.completer.invalidate()

    def _execute(self, text: str) -> Any:
        """``client.execute`` with Ctrl-C cancelling the query (embedded or on a server)."""
        with self.client.cancel_on_interrupt():
            return self.client.execute(text, max_rows=self.max_rows + 1)

    def _set_up_readline(self) -> None:
        try:
            import readline
        except ImportError:  # no line editing on this platform: plain input() still works
            return
        readline.set_completer(self.completer.complete)
        readline.set_completer_delims(" \t\n`'\"()[],;.=<>+-*/")
        readline.parse_and_bind("tab: complete")
        readline.set_history_length(HISTORY_LENGTH)
        if self.history and self.history.exists():
            readline.read_history_file(self.history)

    def _save_history(self) -> None:
        if not self.history:
            return
        try:
            import readline

            self.history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(self.history)
        except (ImportError, OSError):
            pass
