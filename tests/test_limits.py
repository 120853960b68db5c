"""Resource limits, pure (no Spark): every bounded argument and option refuses an
out-of-bound value with an error naming the function, the argument and the bound; files
larger than the size limit are row errors for the pixel functions and ``pixels 'bytes'``,
never read into memory."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from dicomsql.dicom.header import HeaderColumns
from dicomsql.errors import FunctionArgumentError, InvalidDicomFileError
from dicomsql.options import Bound, parse
from dicomsql.source.datasource import DicomReader, FilesPartition, TableLayout, _read_file
from dicomsql.source.options import parse_options
from dicomsql.stats import forest
from dicomsql.storage import MAX_FILE_SIZE_VARIABLE, list_files
from dicomsql.udfs import FUNCTIONS

from .conftest import PYDICOM_TEST_FILES

CT = str(PYDICOM_TEST_FILES / "CT_small.dcm")
OPTIONS_TYPE = pa.map_(pa.string(), pa.string())


def _arrays(columns):
    return tuple(c if isinstance(c, pa.Array) else pa.array(c) for c in columns)


def call(name, *columns):
    """What Spark's Python worker does with ``name``'s wrapper for one batch of ``columns``
    (Python values for a table function)."""
    function = FUNCTIONS[name]
    evaluator = function.evaluator
    if function.kind == "table":
        table = evaluator()
        return list(table.eval(*columns)) + list(getattr(table, "terminate", lambda: ())())
    if function.kind == "aggregate":
        return (
            evaluator(iter([_arrays(columns)]))
            if function.streaming
            else evaluator(*_arrays(columns))
        )
    return next(evaluator(iter([_arrays(columns)])))


def _options(**entries):
    return pa.array([list(entries.items())], type=OPTIONS_TYPE)


def _wide_image(columns: int) -> pa.Array:
    """An image struct of one row and ``columns`` columns."""
    return pa.array([{"rows": 1, "columns": columns, "samples": 1, "data": [0.0] * columns}])


def _features():
    return pa.array([{"x": 1.0}, {"x": 2.0}, {"x": 3.0}, {"x": 4.0}])


#: function -> (a call out of bound, the message it fails with)
OUT_OF_BOUND = {
    "tfrecord_export": (
        lambda: call("tfrecord_export", {"id": 1}, "/tmp/never", {"records_per_file": "0"}),
        "tfrecord_export: argument options: option records_per_file must be an integer between 1 and 10000000 records, got '0'",
    ),
    "dicom_image": (
        lambda: call("dicom_image", [CT], [-1]),
        "dicom_image: argument frame must be between 0 and 2147483647, got -1",
    ),
    "dicom_pixels": (
        lambda: call("dicom_pixels", [CT], [2**31]),
        "dicom_pixels: argument frame must be between 0 and 2147483647, got 2147483648",
    ),
    "dicom_png": (
        lambda: call("dicom_png", [CT], [100000]),
        "dicom_png: argument size must be between 1 and 4096, got 100000",
    ),
    "dicom_png_uri": (
        lambda: call("dicom_png_uri", [CT], [0]),
        "dicom_png_uri: argument size must be between 1 and 4096, got 0",
    ),
    "image_resize": (
        lambda: call("image_resize", [CT], [100000], [64]),
        "image_resize: argument rows must be between 1 and 8192, got 100000",
    ),
    "image_stats": (
        lambda: call("image_stats", [CT], [10**7]),
        "image_stats: argument bins must be between 1 and 100000, got 10000000",
    ),
    "image_pca": (
        lambda: call("image_pca", pa.array([CT]), pa.array([0])),
        "image_pca: argument k must be between 1 and 8192, got 0",
    ),
    "image_covariance": (
        lambda: call("image_covariance", _wide_image(10000)),
        "image_covariance: argument image must be between 1 and 8192 columns, got 10000 columns",
    ),
    "image_eigen": (
        lambda: call("image_eigen", _wide_image(10000)),
        "image_eigen: argument image must be between 1 and 8192 columns, got 10000 columns",
    ),
    "cov_fit": (
        lambda: call("cov_fit", [[0.0] * 9000, [1.0] * 9000]),
        "cov_fit: argument vector must be between 1 and 8192 values, got 9000 values",
    ),
    "cov_partials": (
        lambda: call("cov_partials", ([0.0] * 9000,)),
        "cov_partials: argument vectors must be between 1 and 8192 values, got 9000 values",
    ),
    "pca_fit": (
        lambda: call("pca_fit", [[1.0, 2.0]], [10**6]),
        "pca_fit: argument k must be between 1 and 8192, got 1000000",
    ),
    "pca_from_cov": (
        lambda: call("pca_from_cov", pa.array([{"n": 2}]), pa.array([None], type=pa.int32())),
        "pca_from_cov: argument k must be between 1 and 8192, got NULL",
    ),
    "series_volume": (
        lambda: call(
            "series_volume", pa.array([CT] * 4097), pa.array([None] * 4097), pa.array([None] * 4097)
        ),
        "series_volume: argument image must be between 1 and 4096 slices, got 4097 slices",
    ),
    "als_recommend": (
        lambda: call("als_recommend", None, "R01", 10**6),
        "als_recommend: argument k must be between 1 and 10000, got 1000000",
    ),
    "random_forest_fit": (
        lambda: call(
            "random_forest_fit", pa.array([0, 1, 0, 1]), _features(), _options(trees="5000")
        ),
        "random_forest_fit: argument options: option trees must be an integer between 1 and 2000, got '5000'",
    ),
    "als_fit": (
        lambda: call(
            "als_fit", pa.array(["a"]), pa.array(["b"]), pa.array([1.0]), _options(rank="100000")
        ),
        "als_fit: argument options: option rank must be an integer between 1 and 200, got '100000'",
    ),
    "logreg_fit": (
        lambda: call("logreg_fit", pa.array([0, 1, 0, 1]), _features(), _options(max_iter="1e9")),
        "logreg_fit: argument options: option max_iter must be an integer between 1 and 1000, got '1e9'",
    ),
    "coxph_fit": (
        lambda: call(
            "coxph_fit",
            pa.array([1.0, 2.0]),
            pa.array([1, 0]),
            pa.array([{"x": 1.0}, {"x": 2.0}]),
            _options(max_iter="5000"),
        ),
        "coxph_fit: argument options: option max_iter must be an integer between 1 and 1000, got '5000'",
    ),
}


@pytest.mark.parametrize("name", sorted(OUT_OF_BOUND))
def test_an_out_of_bound_argument_names_the_function_the_argument_and_the_bound(name):
    call, message = OUT_OF_BOUND[name]
    with pytest.raises(FunctionArgumentError, match=f"^{re.escape(message)}$"):
        call()


def test_every_bounded_function_has_an_out_of_bound_case():
    bounded = {
        name
        for name, f in FUNCTIONS.items()
        if f.bounds or any(isinstance(o.parse, Bound) for o in f.option_table)
    }
    shared = {
        "coxph_fit_weighted",
        "coxph_fit_stratified",
    }  # coxph_fit's options table and code path
    assert bounded - shared - set(OUT_OF_BOUND) == set()


def test_values_within_the_bounds_still_work():
    [image] = call("image_resize", [CT], [8], [6]).to_pylist()
    assert (image["rows"], image["columns"], len(image["data"])) == (8, 6, 48)
    assert call("image_pca", pa.array([CT]), pa.array([2])).to_pylist()[0]["components"]
    model = call(
        "random_forest_fit",
        pa.array([0, 1, 0, 1]),
        _features(),
        _options(trees="2000", max_depth="2"),
    ).as_py()
    assert model["trees"] == 2000


def test_pca_covariance_method_refuses_vectors_longer_than_max_dimension():
    message = "pca_fit: argument vector: method covariance accumulates a d x d matrix: vectors must have at most max_dimension (4) values, got 5"
    with pytest.raises(FunctionArgumentError, match=f"^{re.escape(message)}$"):
        call(
            "pca_fit", [[1.0] * 5, [2.0] * 5], [2], _options(method="covariance", max_dimension="4")
        )


def test_bounds_and_bounded_options():
    assert (
        Bound(1, 10).check(10.0) == 10
        and str(Bound(1, 10, "columns")) == "between 1 and 10 columns"
    )
    for bad in (0, 11, None, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError, match="^between 1 and 10$"):
            Bound(1, 10).check(bad)
    assert parse({"trees": "2000"}, forest.OPTIONS)["trees"] == 2000
    with pytest.raises(
        ValueError, match="^option max_depth must be an integer between 1 and 32, got '100'$"
    ):
        parse({"max_depth": "100"}, forest.OPTIONS)
    with pytest.raises(
        ValueError, match="^option seed must be an integer between 0 and 4294967295, got '-1'$"
    ):
        parse({"seed": "-1"}, forest.OPTIONS)


# --- the file size limit --------------------------------------------------------------------


@pytest.fixture
def small_limit(monkeypatch):
    """A size limit below CT_small.dcm's 39 KiB."""
    monkeypatch.setenv(MAX_FILE_SIZE_VARIABLE, "1024")
    return "file is 38.3 KiB, larger than the 1 KiB limit (--max-file-size)"


def test_pixel_functions_give_a_row_error_for_a_file_over_the_limit(small_limit):
    [row] = call("dicom_image", [CT]).to_pylist()
    assert (
        row["data"] is None
        and row["error"] == f"cannot decode {CT}: FileTooLargeError: {small_limit}"
    )
    assert call("dicom_pixels", [CT]).to_pylist() == [None]
    assert call("image_covariance", pa.array([CT])).to_pylist() == [None]
    with pytest.raises(ValueError, match=re.escape(small_limit)):
        call("dicom_image", [CT], [0], _options(mode="FAILFAST"))
    with pytest.raises(ValueError, match=re.escape(small_limit)):
        call("dicom_frames", CT)


def test_file_bytes_over_the_limit_are_a_row_error_too(small_limit):
    content = pa.array([(PYDICOM_TEST_FILES / "CT_small.dcm").read_bytes()], type=pa.binary())
    [row] = call("dicom_image", content).to_pylist()
    assert (
        row["error"]
        == f"cannot decode <{len(content[0].as_py())} bytes>: FileTooLargeError: {small_limit}"
    )


def test_files_within_the_limit_are_decoded(monkeypatch):
    monkeypatch.setenv(MAX_FILE_SIZE_VARIABLE, str(40 * 1024))
    [row] = call("dicom_image", [CT]).to_pylist()
    assert row["error"] is None and len(row["data"]) == 128 * 128


def _bytes_layout() -> TableLayout:
    return TableLayout(HeaderColumns.named(("Modality",)), content=True)


def test_pixels_bytes_gives_a_row_error_for_a_file_over_the_limit(small_limit):
    [entry] = list_files([CT])
    content, record = _read_file(entry, _bytes_layout(), entry.path)
    assert content is None and record.error == small_limit and record.meta is None
    content, record = _read_file(entry, TableLayout(HeaderColumns.named(("Modality",))), entry.path)
    assert record.error is None and record.values == ["CT"]  # headers only: no limit


def test_pixels_bytes_failfast_names_the_file(small_limit):
    from pyspark.sql.types import (
        ArrayType,
        BinaryType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    layout = _bytes_layout()
    types = {
        "STRING": StringType(),
        "BIGINT": LongType(),
        "TIMESTAMP": TimestampType(),
        "BINARY": BinaryType(),
        "ARRAY<STRING>": ArrayType(StringType()),
    }
    schema = StructType([StructField(name, types[ddl]) for name, ddl in layout.fields()])
    reader = DicomReader(
        parse_options({"path": CT, "pixels": "bytes", "mode": "FAILFAST"}), layout, schema
    )
    with pytest.raises(
        InvalidDicomFileError, match=re.escape(f"dicom source (mode FAILFAST): {CT}: {small_limit}")
    ):
        list(reader.read(FilesPartition(0, tuple(list_files([CT])))))
    permissive = DicomReader(parse_options({"path": CT, "pixels": "bytes"}), layout, schema)
    [batch] = permissive.read(FilesPartition(0, tuple(list_files([CT]))))
    assert batch.column("content").to_pylist() == [None] and batch.column(
        "_corrupt_record"
    ).to_pylist() == [small_limit]


# --- argument errors and calls the registry's wrappers handle -------------------------------


def test_series_volume_names_its_image_argument():
    with pytest.raises(
        FunctionArgumentError, match="^series_volume: argument image must be an image struct"
    ):
        call("series_volume", [1, 2], [[0.0, 0.0, 0.0]] * 2, [[1.0, 0, 0, 0, 1.0, 0]] * 2)


def test_pca_fit_takes_vectors_longer_than_the_covariance_bound():
    rows = [[float((i * j) % 7) for j in range(9000)] for i in range(1, 5)]
    model = call("pca_fit", rows, [2] * 4).as_py()
    assert model["error"] is None and model["dimension"] == 9000 and model["method"] != "covariance"
    with pytest.raises(FunctionArgumentError, match="^cov_fit: argument vector must be between 1"):
        call("cov_fit", rows)


def test_pca_reconstruct_names_its_scores_argument():
    model = call("pca_fit", [[1.0, 2.0, 0.0], [2.0, 1.0, 1.0], [0.0, 1.0, 3.0]], [2] * 3)
    with pytest.raises(FunctionArgumentError, match="^pca_reconstruct: argument scores"):
        call("pca_reconstruct", pa.array([model.as_py()], type=model.type), [[1.0]])


def test_an_unknown_or_nan_stratum_predicts_null():
    durations, events = [5.0, 8.0, 3.0, 9.0, 4.0, 7.0, 6.0, 2.0], [1, 1, 0, 1, 1, 0, 1, 1]
    features = pa.array([{"x": float(v)} for v in [1, 3, 2, 5, 4, 1, 2, 3]])
    model = call("coxph_fit_stratified", durations, events, [1.0, 2.0] * 4, features).as_py()
    assert model["error"] is None
    models = pa.array([model] * 4, type=call("coxph_fit", durations, events, features).type)
    predicted = call(
        "coxph_predict",
        models,
        features.slice(0, 4),
        ["survival"] * 4,
        [4.0] * 4,
        [1.0, 2.0, float("nan"), None],
    ).to_pylist()
    assert predicted[0] is not None and predicted[1] is not None and predicted[2:] == [None, None]


def test_window_arguments_of_the_wrong_type_name_the_argument():
    with pytest.raises(FunctionArgumentError, match="^dicom_png: argument window must be auto or"):
        call("dicom_png", [CT], [64], [40])
    with pytest.raises(
        FunctionArgumentError, match="^dicom_window: argument width must be a number"
    ):
        call("dicom_window", [CT], [40.0], ["abc"])


def test_a_null_file_is_a_null_image():
    assert call("dicom_image", pa.nulls(2)).to_pylist() == [None, None]  # SELECT dicom_image(NULL)


def test_table_functions_bind_arguments_by_name():
    model = call("als_fit", ["u1", "u1", "u2"], ["a", "b", "a"], [5.0, 1.0, 4.0]).as_py()

    class Row(dict):
        def asDict(self, recursive=False):  # what Spark hands a table function for a struct
            return dict(self)

    table = FUNCTIONS["als_recommend"].evaluator()
    assert list(table.eval(k=1, model=Row(model), user="u1")) == list(
        table.eval(Row(model), "u1", 1)
    )
