"""Fits of one group larger than a worker, exactly, across the partitions of a DataFrame.

A ``*_fit`` aggregate streams its group through one Python worker: fine for a model per
site, not for one model of a hundred million rows. The functions here fit one model from
all the rows of a DataFrame, with Spark jobs driven from the driver: each Newton step is a
pass or two over the cached, partitioned rows in which every partition returns a few
numbers (O(p^2)), so no worker ever holds more than an Arrow batch (or, for Cox, one tie
group). The models are the aggregates' models, field for field: ``coxph_predict``,
``linreg_predict``, ``logreg_predict`` and the ``*_summary`` functions take them, and
:func:`models_frame` makes them a table::

    from dicomsql import distributed
    model = distributed.coxph_fit(spark.table("patients"), "months", "died", ["age", "dose"])
    distributed.models_frame(spark, [model], "coxph").write.saveAsTable("cox_all")

Cox proportional hazards (:func:`coxph_fit`): the rows are range-partitioned by descending
time and sorted within partitions, so a partition is a range of times; per likelihood
evaluation, one job sums each partition's risk set (:func:`dicomsql.stats.riskset.totals`)
and a second computes each partition's terms given the sums of the partitions before it
(:func:`dicomsql.stats.riskset.terms`). Efron's and Breslow's ties, case weights and the
ridge penalty are lifelines' (Efron) and ``coxph_fit``'s, to rounding.

Linear regression (:func:`linreg_fit`): one pass; each partition accumulates the count,
means and scatter matrix of its rows, merged on the driver (strings one-hot encoded, their
categories merged). Logistic regression (:func:`logreg_fit`): Newton-Raphson, each step one
pass returning every partition's log-likelihood, gradient and ``X'WX``.

A SQL function cannot start Spark jobs (it runs inside one), so these are Python functions
of the session; the aggregates stay what SQL calls.
"""

from __future__ import annotations

import functools
import math
import pickle
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from . import passes
from .errors import ArgumentError
from .options import OptionError
from .stats import cox, linear, logistic, riskset
from .stats.concordance import concordance_index
from .stats.family import Unfit
from .stats.features import class_name, class_names

if TYPE_CHECKING:
    import pyspark

__all__ = ["coxph_fit", "linreg_fit", "logreg_fit", "models_frame"]


def coxph_fit(
    data: pyspark.sql.DataFrame,
    duration: str,
    event: str,
    features: Sequence[str],
    *,
    weight: str | None = None,
    options: Mapping[str, str] | None = None,
    partitions: int | None = None,
) -> dict[str, Any]:
    """Fit one Cox proportional hazards model to every row of ``data``, across its
    partitions; returns the model dict of ``coxph_fit`` (:data:`dicomsql.stats.cox.MODEL_FIELDS`).

    ``duration``, ``event`` (boolean or 0/1) and ``features`` (numbers or booleans) name
    columns of ``data``; ``weight`` an optional column of positive case weights (as
    ``coxph_fit_weighted``). ``options`` are ``coxph_fit``'s (``ties``, ``penalizer``,
    ``alpha``, ``max_iter``, ``tol``; ``l1_ratio`` must be 0). Rows with a NULL, NaN or
    infinity are left out (``n_dropped``). ``partitions`` (default: twice the default
    parallelism) is how many time ranges the rows are cut into. Data that cannot be fitted
    gives NULL estimates and the reason in ``error``, as the aggregate does; a bad argument
    raises :class:`~dicomsql.errors.ArgumentError` naming it.

    The concordance is computed on the driver from three numbers per row.
    """
    from pyspark import StorageLevel

    settings = cox.FAMILY.settings(options)
    if settings["l1_ratio"] > 0:
        raise OptionError("option l1_ratio must be 0 in a distributed fit (no lasso)", "l1_ratio")
    names = list(features)
    if not names:
        raise ArgumentError("features", "must name at least one column")
    _numeric_columns(
        data,
        {
            "duration": [duration],
            "event": [event],
            "features": names,
            **({"weight": [weight]} if weight else {}),
        },
    )
    complete, n, dropped = _complete(data, [duration, event, *names, *([weight] if weight else [])])
    described = {
        "features": names,
        "fields": names,
        "categories": [None] * len(names),
        "n_dropped": dropped,
        "weighted": weight is not None,
    }
    spark = data.sparkSession
    cut = partitions or 2 * spark.sparkContext.defaultParallelism

    def estimate() -> dict[str, Any]:
        facts = _facts(complete, duration, event, names, weight)
        _check(facts, names)
        means = np.array([facts[f"mean{i}"] for i in range(len(names))])
        scale = np.array([facts[f"scale{i}"] for i in range(len(names))])
        prepared = _standardised(complete, duration, event, names, weight, means, scale, cut)
        prepared.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            prepared.count()
            return _cox_estimates(prepared, len(names), facts, means, scale, settings)
        finally:
            prepared.unpersist()

    return cox.FAMILY.model(settings, {**described, "n": n}, estimate)


def linreg_fit(
    data: pyspark.sql.DataFrame,
    label: str,
    features: Sequence[str],
    *,
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fit one linear regression of ``label`` on ``features`` (columns of ``data``: numbers,
    booleans, strings one-hot encoded) to every row of ``data``; returns the model dict of
    ``linreg_fit`` (:data:`dicomsql.stats.linear.MODEL_FIELDS`), equal to it to rounding.

    One pass: each partition accumulates its rows' count, means and scatter matrix
    (O(p^2), as the aggregate does batch by batch) and the driver merges the partials
    (:meth:`~dicomsql.stats.linear.LinregAccumulator.merge`). ``options`` are
    ``linreg_fit``'s; rows with a NULL are left out (``n_dropped``).
    """
    from pyspark.sql import functions as F

    linear.FAMILY.settings(options)  # a bad option is an error before any job
    names = list(features)
    if not names:
        raise ArgumentError("features", "must name at least one column")
    _numeric_columns(data, {"label": [label]})
    _columns_exist(data, {"features": names})
    rows = data.select(
        F.col(label).alias("label"), F.struct(*(F.col(name) for name in names)).alias("features")
    )
    partials = rows.mapInArrow(
        functools.partial(_linreg_partial, options=options), "partial binary"
    ).collect()
    accumulator = linear.LinregAccumulator(options)
    for row in partials:
        accumulator.merge(pickle.loads(row["partial"]))
    return accumulator.model()


def _linreg_partial(
    batches: Iterator[pa.RecordBatch], options: Mapping[str, str] | None
) -> Iterator[pa.RecordBatch]:
    """A partition's :class:`~dicomsql.stats.linear.LinregAccumulator`, pickled."""
    from .udfs.arrow import numbers, struct_features

    accumulator = linear.LinregAccumulator(options)
    for batch in batches:
        if batch.num_rows:
            columns = struct_features(batch.column("features"))
            accumulator.add(numbers(batch.column("label")), columns)
    yield pa.RecordBatch.from_pydict({"partial": [pickle.dumps(accumulator)]})


def logreg_fit(
    data: pyspark.sql.DataFrame,
    label: str,
    features: Sequence[str],
    *,
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fit one logistic regression (binary, or multinomial for more than two classes) of
    ``label`` (any type, classes as ``logreg_fit``'s) on ``features`` (numbers or booleans)
    to every row of ``data``; returns the model dict of ``logreg_fit``
    (:data:`dicomsql.stats.logistic.MODEL_FIELDS`), equal to it to rounding.

    Newton-Raphson as the aggregate's, each likelihood evaluation one job in which every
    partition returns its log-likelihood, gradient and Hessian (IRLS's partial ``X'WX``),
    summed on the driver (a halved step costs one more); an ``l1`` fit (L-BFGS-B) is a job
    per evaluation without the Hessian, often hundreds. Before them: a count of the complete
    rows, the class counts, and for an unpenalised fit the features' means and covariances
    (the check for constant and collinear features). Rows with a NULL are left out.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import FractionalType

    settings = logistic.FAMILY.settings(options)
    names = list(features)
    if not names:
        raise ArgumentError("features", "must name at least one column")
    fields = _columns_exist(data, {"label": [label]})
    _numeric_columns(data, {"features": names})
    if isinstance(fields[label], FractionalType):  # NaN is no class
        complete, n, dropped = _complete(data, [*names, label])
    else:
        complete, n, dropped = _complete(data, names, present=[label])
    counted = complete.groupBy(F.col(label).alias("label")).count().collect()
    classes, index = class_names([row["label"] for row in counted])
    counts = np.bincount(index, [row["count"] for row in counted], len(classes)).astype(int)
    described = {
        "features": names,
        "fields": names,
        "categories": [None] * len(names),
        "classes": classes,
        "n": n,
        "n_dropped": dropped,
        "fit_intercept": settings["intercept"],
    }

    def estimate() -> dict[str, Any]:
        logistic.check(
            n,
            len(classes),
            names,
            lambda: _scatter(complete, names, settings["intercept"]),
            settings,
        )
        prepared = complete.select(
            F.col(label).alias("label"),
            *(F.col(name).cast("double").alias(f"x{i}") for i, name in enumerate(names)),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            problem = _LogitPasses(prepared, len(names), classes, counts, settings)
            return logistic.estimate(problem, classes, names, settings)
        finally:
            prepared.unpersist()

    return logistic.FAMILY.model(settings, described, estimate)


def _scatter(complete, names: Sequence[str], centred: bool) -> np.ndarray:
    """The features' scatter matrix: centred (``(n - 1)`` times their covariance), or the
    uncentred ``X'X``; one pass."""
    from pyspark.sql import functions as F

    p = len(names)
    pairs = [(i, j) for i in range(p) for j in range(i, p)]
    row = complete.select(
        F.count(F.lit(1)).alias("n"),
        *(F.avg(F.col(name).cast("double")).alias(f"m{i}") for i, name in enumerate(names)),
        *(
            F.covar_samp(F.col(names[i]).cast("double"), F.col(names[j]).cast("double")).alias(
                f"c{i}_{j}"
            )
            for i, j in pairs
        ),
    ).first()
    n, mean = row["n"], np.array([row[f"m{i}"] for i in range(p)])
    scatter = np.zeros((p, p))
    for i, j in pairs:
        scatter[i, j] = scatter[j, i] = (row[f"c{i}_{j}"] or 0.0) * (n - 1)
    return scatter if centred else scatter + n * np.outer(mean, mean)


class _LogitPasses(logistic.Likelihood):
    """The logistic likelihood of the prepared rows (``label``, ``x0``...), a job per
    evaluation."""

    def __init__(
        self, prepared, p: int, classes: list[str], counts: np.ndarray, settings: Mapping
    ) -> None:
        intercept = settings["intercept"]
        super().__init__(p + intercept, counts, intercept, settings["l2"])
        self.prepared, self.class_names, self.intercept = prepared, classes, intercept

    def terms(self, theta: np.ndarray, hessian: bool) -> logistic.Terms:
        partial = functools.partial(
            _logit_partial,
            coefficients=self.shape(theta),
            classes=self.class_names,
            intercept=self.intercept,
            hessian=hessian,
        )
        rows = self.prepared.mapInArrow(
            partial, "loss double, gradient array<double>, hessian array<double>, fitted_min double"
        ).collect()
        size = len(theta)
        total = logistic.Terms(
            0.0, np.zeros(size), np.zeros((size, size)) if hessian else None, 0.0
        )
        for row in rows:
            total = total + logistic.Terms(
                row["loss"],
                np.array(row["gradient"]),
                np.array(row["hessian"]).reshape(size, size) if hessian else None,
                row["fitted_min"],
            )
        return total


def _logit_partial(
    batches: Iterator[pa.RecordBatch],
    coefficients: np.ndarray,
    classes: list[str],
    intercept: bool,
    hessian: bool,
) -> Iterator[pa.RecordBatch]:
    """A partition's :class:`~dicomsql.stats.logistic.Terms` at ``coefficients``."""
    position = {name: index for index, name in enumerate(classes)}
    total = None
    for batch in batches:
        if not batch.num_rows:
            continue
        target = np.array([position[class_name(v)] for v in batch.column("label").to_pylist()])
        x = [batch.column(f"x{i}").to_numpy() for i in range(batch.num_columns - 1)]
        design = np.column_stack([np.ones(batch.num_rows)] * intercept + x)
        terms = logistic.logit_terms(design, target, coefficients, hessian)
        total = terms if total is None else total + terms
    if total is not None:
        yield pa.RecordBatch.from_pydict(
            {
                "loss": [total.loss],
                "gradient": [total.gradient.tolist()],
                "hessian": [None if total.hessian is None else total.hessian.ravel().tolist()],
                "fitted_min": [total.fitted_min],
            },
            schema=pa.schema(
                [
                    ("loss", pa.float64()),
                    ("gradient", pa.list_(pa.float64())),
                    ("hessian", pa.list_(pa.float64())),
                    ("fitted_min", pa.float64()),
                ]
            ),
        )


def models_frame(
    spark: pyspark.sql.SparkSession, models: Iterable[Mapping[str, Any]], kind: str = "coxph"
) -> pyspark.sql.DataFrame:
    """A DataFrame of one column ``model`` (the SQL struct of the ``kind_fit`` aggregate:
    ``coxph``, ``linreg`` or ``logreg``) holding ``models``: save it as a table, join it,
    apply ``coxph_predict``, ``linreg_predict`` or ``logreg_predict`` to it."""
    from .udfs.models import LINREG_MODEL, LOGREG_MODEL
    from .udfs.survival import COX_MODEL

    types = {"coxph": COX_MODEL, "linreg": LINREG_MODEL, "logreg": LOGREG_MODEL}
    if kind not in types:
        raise ArgumentError("kind", f"must be one of {', '.join(types)}, got {kind!r}")
    struct = types[kind]
    table = pa.table({"model": struct.array([dict(model) for model in models])})
    return spark.createDataFrame(table, f"model {struct.ddl}")


def _columns_exist(
    data: pyspark.sql.DataFrame, arguments: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The types of ``data``'s columns by name; :class:`ArgumentError` naming the argument of
    a column that is missing."""
    fields = {field.name: field.dataType for field in data.schema.fields}
    for argument, columns in arguments.items():
        for name in columns:
            if name not in fields:
                raise ArgumentError(
                    argument, f"no column {name!r} (the columns are {', '.join(fields)})"
                )
    return fields


def _numeric_columns(data: pyspark.sql.DataFrame, arguments: Mapping[str, Sequence[str]]) -> None:
    """Raise :class:`ArgumentError` naming the argument of a column that is missing or not
    a number or boolean."""
    from pyspark.sql.types import BooleanType, NumericType

    fields = _columns_exist(data, arguments)
    for argument, columns in arguments.items():
        for name in columns:
            if not isinstance(fields[name], (NumericType, BooleanType)):
                raise ArgumentError(
                    argument,
                    f"column {name!r} must be a number or boolean, got {fields[name].simpleString()}"
                    " (encode categories as 0/1 columns)",
                )


def _complete(data: pyspark.sql.DataFrame, columns: Sequence[str], present: Sequence[str] = ()):
    """The rows with a finite value in every one of ``columns`` and a value in every one of
    ``present``, how many, and how many were left out."""
    from pyspark.sql import functions as F

    def finite(name: str):
        value = F.col(name).cast("double")
        return value.isNotNull() & ~F.isnan(value) & (F.abs(value) != float("inf"))

    keep = functools.reduce(
        lambda a, b: a & b,
        [*(finite(name) for name in columns), *(F.col(name).isNotNull() for name in present)],
    )
    counted = data.select(F.count(F.lit(1)).alias("all"), F.count_if(keep).alias("kept")).first()
    return data.where(keep), int(counted["kept"]), int(counted["all"] - counted["kept"])


def _facts(complete, duration: str, event: str, names: Sequence[str], weight: str | None) -> dict:
    """One pass of sums: rows, events, the duration and event ranges, the weights' minimum,
    each feature's mean and sample standard deviation (as lifelines standardises)."""
    from pyspark.sql import functions as F

    time, died = F.col(duration).cast("double"), F.col(event).cast("double")
    columns = [
        F.count(F.lit(1)).alias("n"),
        F.sum(died).alias("events"),
        F.min(time).alias("min_time"),
        F.count_if((died != 0) & (died != 1)).alias("bad_events"),
        (F.min(F.col(weight).cast("double")) if weight else F.lit(1.0)).alias("min_weight"),
    ]
    for i, name in enumerate(names):
        value = F.col(name).cast("double")
        columns += [F.avg(value).alias(f"mean{i}"), F.stddev_samp(value).alias(f"scale{i}")]
    return complete.select(*columns).first().asDict()


def _check(facts: Mapping[str, Any], names: Sequence[str]) -> None:
    """Raise :class:`Unfit` as ``coxph_fit`` would for the same rows."""
    if not facts["n"]:
        raise Unfit("no complete rows")
    if facts["min_time"] < 0:
        raise Unfit("negative durations; durations must be >= 0")
    if facts["bad_events"]:
        raise Unfit("event must be 0/1 or boolean")
    if not facts["events"]:
        raise Unfit("no events: every row is censored")
    if facts["min_weight"] <= 0:
        raise Unfit("weights must be positive")
    constant = [n for i, n in enumerate(names) if not facts[f"scale{i}"]]
    if constant:
        raise Unfit(f"constant feature(s) {', '.join(constant)}: their effect cannot be estimated")


def _standardised(
    complete,
    duration: str,
    event: str,
    names: Sequence[str],
    weight: str | None,
    means: np.ndarray,
    scale: np.ndarray,
    partitions: int,
):
    """The rows as (t, e, w, x0..., part): standardised features, range-partitioned by
    descending time (a time never spans two partitions) and sorted so within each."""
    from pyspark.sql import functions as F

    columns = [
        F.col(duration).cast("double").alias(passes.TIME),
        F.col(event).cast("double").alias(passes.EVENT),
        (F.col(weight).cast("double") if weight else F.lit(1.0)).alias(passes.WEIGHT),
        *(
            ((F.col(name).cast("double") - float(m)) / float(s)).alias(f"x{i}")
            for i, (name, m, s) in enumerate(zip(names, means, scale, strict=True))
        ),
    ]
    return (
        complete.select(*columns)
        .repartitionByRange(partitions, F.col(passes.TIME).desc())
        .sortWithinPartitions(F.col(passes.TIME).desc())
        .withColumn(passes.PART, F.spark_partition_id())
    )


class _CoxPasses:
    """The passes of a Cox fit over the prepared rows, for one ``beta`` at a time."""

    def __init__(self, prepared, p: int, ties: str) -> None:
        self.prepared, self.p, self.ties = prepared, p, ties

    def offsets(self, beta: np.ndarray) -> dict[int, riskset.RiskSums]:
        """Per partition, the risk sums of every partition before it (later times)."""
        rows = self.prepared.mapInArrow(
            functools.partial(passes.cox_totals, beta=beta),
            "part bigint, s0 double, s1 array<double>, s2 array<double>",
        ).collect()
        offsets, running = {}, riskset.RiskSums.zero(self.p)
        for row in sorted(rows, key=lambda row: row["part"]):
            offsets[row["part"]] = running
            running = running + riskset.RiskSums(
                row["s0"], np.array(row["s1"]), np.array(row["s2"]).reshape(self.p, self.p)
            )
        return offsets

    def terms(self, beta: np.ndarray) -> riskset.Terms:
        offsets = self.offsets(beta)
        rows = self.prepared.mapInArrow(
            functools.partial(passes.cox_terms, beta=beta, offsets=offsets, ties=self.ties),
            "loglik double, gradient array<double>, hessian array<double>",
        ).collect()
        total = riskset.Terms.zero(self.p)
        for row in rows:
            total = total + riskset.Terms(
                row["loglik"],
                np.array(row["gradient"]),
                np.array(row["hessian"]).reshape(self.p, self.p),
            )
        return total

    def baseline(self, beta: np.ndarray):
        table = self.prepared.mapInArrow(
            functools.partial(passes.cox_baseline, beta=beta, offsets=self.offsets(beta)),
            "time double, increment double",
        ).toArrow()
        return cox.baseline_frame(
            table.column("time").to_numpy(), table.column("increment").to_numpy()
        )

    def concordance(self, beta: np.ndarray) -> float:
        table = self.prepared.mapInArrow(
            functools.partial(passes.cox_scores, beta=beta),
            "time double, event double, score double",
        ).toArrow()
        return concordance_index(
            table.column("time").to_numpy(),
            -table.column("score").to_numpy(),
            table.column("event").to_numpy(),
        )


def _cox_estimates(
    prepared,
    p: int,
    facts: Mapping[str, Any],
    means: np.ndarray,
    scale: np.ndarray,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    passes = _CoxPasses(prepared, p, settings["ties"])
    fitted = cox.newton(passes.terms, p, facts["n"], settings)
    if not all(math.isfinite(value) for value in fitted.beta):
        raise Unfit("the fit diverged", iterations=fitted.iterations)
    model = cox.newton_estimates(fitted, means, scale, settings["alpha"])
    baseline = passes.baseline(fitted.beta)
    model.update(
        concordance=passes.concordance(fitted.beta),
        events=int(facts["events"]),
        baseline_times=baseline.index.to_numpy(dtype=float).tolist(),
        baseline_cumhaz=baseline.to_numpy(dtype=float).tolist(),
    )
    return model
