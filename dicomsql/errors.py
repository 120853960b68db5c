"""Exceptions raised by dicomsql.

Every message says what was wrong and what to do about it; SQL function errors also name the
function and the argument, because over JDBC the message is all the analyst sees.
"""

from __future__ import annotations

import re


class DicomsqlError(Exception):
    """Base class of every error dicomsql raises on purpose."""


class FunctionArgumentError(DicomsqlError, ValueError):
    """A SQL function was called with an argument it cannot use.

    >>> str(FunctionArgumentError("dicom_tag", "key", "a DICOM keyword or tag", "'PatientAgee'"))
    "dicom_tag: argument key must be a DICOM keyword or tag, got 'PatientAgee'"
    """

    def __init__(self, function: str, argument: str, expected: str, got: str):
        self.function = function
        self.argument = argument
        super().__init__(f"{function}: argument {argument} must be {expected}, got {got}")

    @classmethod
    def because(cls, function: str, argument: str, reason: str) -> "FunctionArgumentError":
        """An error whose reason is already a sentence.

        >>> str(FunctionArgumentError.because("coxph_fit", "options", "unknown option 'tie'"))
        "coxph_fit: argument options: unknown option 'tie'"
        """
        error = cls.__new__(cls)
        error.function, error.argument = function, argument
        DicomsqlError.__init__(error, f"{function}: argument {argument}: {reason}")
        return error


class InvalidDicomFileError(DicomsqlError):
    """A file is not DICOM, or is damaged (truncated, malformed header)."""


class HomeInUseError(DicomsqlError):
    """Another process holds the dicomsql home (its embedded metastore admits one process)."""


class JavaNotFoundError(DicomsqlError):
    """No suitable Java runtime (17 or newer) is available to start Spark."""


class QueryError(DicomsqlError):
    """A SQL statement failed (in an embedded session or on a server)."""


class QueryCancelled(QueryError):
    """A running statement was cancelled (Ctrl-C in ``dicomsql shell``)."""


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit|Warning))(?::\s*(.*))?$")


def concise_message(text: str) -> str:
    """The part of a Spark or Python-worker error message a person needs.

    Python UDF failures arrive as a whole worker traceback: keep the exception line (the
    last ``SomeError: message`` line). Spark errors keep their first line (error class and
    message), without the hints and the query plan that follow.

    >>> concise_message("PythonException: from the Python worker:\\nTraceback (most recent call last):"
    ...                 "\\n  File x\\ndicomsql.errors.FunctionArgumentError: dicom_tag: bad key\\n SQLSTATE: 1")
    'FunctionArgumentError: dicom_tag: bad key'
    >>> concise_message("Traceback (most recent call last):\\n  File x\\nAssertionError\\n")
    'AssertionError'
    """
    stripped = text.strip()
    if "Traceback (most recent call last)" in stripped:
        for line in reversed(stripped.split("Traceback (most recent call last)")[-1].splitlines()):
            match = _EXCEPTION_LINE.match(line.strip())
            if match:
                return f"{match.group(1)}: {match.group(2)}" if match.group(2) else match.group(1)
    return stripped.splitlines()[0].strip() if stripped else text
