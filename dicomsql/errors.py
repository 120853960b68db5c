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
    def because(cls, function: str, argument: str, reason: str) -> FunctionArgumentError:
        """An error whose reason is already a sentence.

        >>> str(FunctionArgumentError.because("coxph_fit", "options", "unknown option 'tie'"))
        "coxph_fit: argument options: unknown option 'tie'"
        """
        error = cls.__new__(cls)
        error.function, error.argument = function, argument
        DicomsqlError.__init__(error, f"{function}: argument {argument}: {reason}")
        return error


class ArgumentError(ValueError):
    """A prediction argument that cannot be used; ``argument`` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


class InvalidDicomFileError(DicomsqlError):
    """A file is not DICOM, or is damaged (truncated, malformed header)."""


class FileTooLargeError(DicomsqlError):
    """A file is larger than the server's ``--max-file-size``: it is not read into memory."""


class HomeInUseError(DicomsqlError):
    """Another process holds the dicomsql home (its embedded metastore admits one process)."""


class JavaNotFoundError(DicomsqlError):
    """No suitable Java runtime (17 or newer) is available to start Spark."""


class QueryError(DicomsqlError):
    """A SQL statement failed (in an embedded session or on a server)."""


class QueryCancelled(QueryError):
    """A running statement was cancelled (Ctrl-C in ``dicomsql shell``)."""


_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit|Warning))(?::\s*(.*))?$"
)


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


#: SQLSTATE of an error that is not Spark's and names no class of its own.
INTERNAL_SQLSTATE = "XX000"


def client_error(exc: BaseException) -> tuple[str, str]:
    """What a client is told of ``exc``: one concise message and a SQLSTATE.

    dicomsql's own errors travel as raised (also from inside a Python worker), Spark's as
    Spark's error class and message; no traceback and no server path. Anything else is an
    internal error whose details stay in the server log.

    >>> client_error(FunctionArgumentError("dicom_tag", "key", "a DICOM keyword", "'x'"))
    ("dicom_tag: argument key must be a DICOM keyword, got 'x'", '22023')
    """
    if isinstance(exc, DicomsqlError):  # a class may name its SQLSTATE (the policy's: 42501)
        return str(exc), getattr(exc, "sqlstate", None) or _OWN_ERRORS.get(
            type(exc).__name__, "HY000"
        )
    sqlstate = _spark_sqlstate(exc)
    java_exception = getattr(exc, "java_exception", None)  # a JVM error pyspark did not convert
    if sqlstate is None and java_exception is not None:
        return concise_message(str(java_exception.toString())), INTERNAL_SQLSTATE
    if sqlstate is None:
        return (
            f"internal error ({type(exc).__name__}); the server log has the details",
            INTERNAL_SQLSTATE,
        )
    message = concise_message(str(exc))
    own = re.match(rf"^({'|'.join(_OWN_ERRORS)}): (.*)$", message, re.DOTALL)
    return (own.group(2), _OWN_ERRORS.get(own.group(1), "HY000")) if own else (message, sqlstate)


#: dicomsql's exception classes (as a Python worker's traceback names them) and their
#: SQLSTATE: 22023 (invalid parameter value) for bad arguments, else HY000.
_OWN_ERRORS = {
    name: "22023" if issubclass(value, ValueError) else "HY000"
    for name, value in dict(globals()).items()
    if isinstance(value, type) and issubclass(value, DicomsqlError)
}


def _spark_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a pyspark error (None when ``exc`` is not one)."""
    get_sqlstate = getattr(exc, "getSqlState", None)
    if get_sqlstate is None:
        return None
    try:
        return get_sqlstate() or INTERNAL_SQLSTATE
    except Exception:  # noqa: BLE001 - the JVM side of the error is gone
        return INTERNAL_SQLSTATE
