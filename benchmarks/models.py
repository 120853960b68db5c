"""Benchmark: predictive model fits in SQL against the same library calls in-process.

    .venv/bin/python benchmarks/models.py [--rows 100000] [--features 20] [--groups 100] [--group-rows 1000]

One fit per model over 100,000 rows x 20 features, each the best of 3 runs:

  linreg_fit         vs statsmodels OLS (estimates, inference, R^2, F test)
  logreg_fit         vs statsmodels Logit (the same)
  naive_bayes_fit    vs scikit-learn GaussianNB
  random_forest_fit  vs scikit-learn RandomForestClassifier (50 trees, depth 10, one core)
  als_fit            vs dicomsql.stats.als.fit in-process (100,000 ratings; no library has it)

then per-group fits, 100 groups x 1,000 rows, one SELECT ... GROUP BY against a sequential
loop of the library call (logistic regression and random forests of 50 trees).

Prints the times and the ratios SQL / in-process (target <= 1.3) and loop / GROUP BY (target
>= 1.6 on 2 cores), and the peak resident memory of the Python workers. The models stay in the
engine (only their count and errors are collected), as the in-process ones stay in the
process. A query through a Python worker has a fixed cost (planning, the JVM writing Arrow
batches, the worker reading them: about 0.3 s for these 100,000 rows on 2 cores), which
dominates the fits that take a fraction of a second in-process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.ensemble import RandomForestClassifier
from sklearn.naive_bayes import GaussianNB

sys.path.insert(0, str(Path(__file__).parent))
from survival import python_worker_peak_mib, timed

from dicomsql.stats import als

TREES = 50


def simulate(rows: int, features: int, groups: int = 1, seed: int = 0) -> pd.DataFrame:
    """Numeric features, a continuous label ``y``, a binary label ``b`` and a group ``g``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    beta = np.linspace(-1, 1, features)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
    frame["y"] = x @ beta + rng.normal(size=rows)
    frame["b"] = (rng.random(rows) < 1 / (1 + np.exp(-(x @ beta) / 2))).astype(np.int32)
    frame["g"] = np.repeat(np.arange(groups), -(-rows // groups))[:rows]
    return frame


def ratings(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 5000, rows), rng.integers(0, 800, rows)
    taste = rng.normal(size=(5000, 4)) @ rng.normal(size=(4, 800))
    return pd.DataFrame(
        {"u": users, "i": items, "r": np.clip(np.round(3 + taste[users, items]), 1, 5)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--group-rows", type=int, default=1000)
    args = parser.parse_args()
    big = simulate(args.rows, args.features)
    grouped = simulate(args.groups * args.group_rows, args.features, groups=args.groups, seed=1)
    rated = ratings(args.rows)
    names = [f"x{i}" for i in range(args.features)]
    struct = "struct(" + ", ".join(names) + ")"
    x = big[names]
    print(
        f"{args.rows:,} rows x {args.features} features; {args.groups} groups x {args.group_rows:,} rows; 2 cores\n"
    )

    def ols(frame: pd.DataFrame) -> None:
        fit = sm.OLS(frame["y"], sm.add_constant(frame[names])).fit()
        fit.params, fit.bse, fit.pvalues, fit.conf_int(), fit.rsquared_adj, fit.fvalue, fit.f_pvalue

    def logit(frame: pd.DataFrame) -> None:
        fit = sm.Logit(frame["b"], sm.add_constant(frame[names])).fit(disp=0)
        fit.params, fit.bse, fit.pvalues, fit.conf_int(), fit.llnull, fit.llr_pvalue

    def forest(frame: pd.DataFrame) -> None:
        RandomForestClassifier(n_estimators=TREES, max_depth=10, random_state=0, n_jobs=1).fit(
            frame[names], frame["b"]
        )

    in_process = {
        "linreg_fit": timed("a  statsmodels OLS", lambda: ols(big)),
        "logreg_fit": timed("a  statsmodels Logit", lambda: logit(big)),
        "naive_bayes_fit": timed(
            "a  scikit-learn GaussianNB", lambda: GaussianNB().fit(x, big["b"])
        ),
        "random_forest_fit": timed(
            f"a  scikit-learn RandomForestClassifier ({TREES} trees)", lambda: forest(big), repeat=1
        ),
        "als_fit": timed(
            "a  dicomsql.stats.als.fit in-process",
            lambda: als.fit(rated.u, rated.i, rated.r.to_numpy()),
        ),
    }
    loops = {
        "logreg_fit": timed(
            "c  statsmodels Logit, one fit per group",
            lambda: [logit(rows) for _, rows in grouped.groupby("g")],
        ),
        "random_forest_fit": timed(
            "c  RandomForestClassifier, one fit per group",
            lambda: [forest(rows) for _, rows in grouped.groupby("g")],
            repeat=1,
        ),
    }

    import dicomsql

    with tempfile.TemporaryDirectory() as home:
        spark = dicomsql.session(master="local[2]", home=home)
        spark.createDataFrame(big).cache().createOrReplaceTempView("big")
        spark.createDataFrame(grouped).repartition(2, "g").cache().createOrReplaceTempView(
            "grouped"
        )
        spark.createDataFrame(rated).cache().createOrReplaceTempView("rated")
        for view in ("big", "grouped", "rated"):
            spark.sql(f"SELECT count(*) FROM {view}").collect()

        def sql(expression: str, source: str, expected: int) -> None:
            # The models stay in the engine, as the in-process ones stay in the process (as
            # CREATE TABLE ... AS keeps them); only their count and errors come back.
            counts = spark.sql(
                f"SELECT count(*), count_if(m.error IS NULL) FROM (SELECT {expression} AS m {source})"
            ).first()
            assert tuple(counts) == (expected, expected), counts

        calls = {
            "linreg_fit": f"linreg_fit(y, {struct})",
            "logreg_fit": f"logreg_fit(b, {struct})",
            "naive_bayes_fit": f"naive_bayes_fit(b, {struct})",
            "random_forest_fit": f"random_forest_fit(b, {struct}, map('trees', '{TREES}'))",
        }
        for (
            call
        ) in calls.values():  # start the workers and import each library there, as in-process
            spark.sql(f"SELECT {call} FROM grouped WHERE g < 4 GROUP BY g").collect()
        in_sql = {
            name: timed(
                f"b  SELECT {name}(...) FROM big",
                lambda c=call: sql(c, "FROM big", 1),
                repeat=1 if name == "random_forest_fit" else 3,
            )
            for name, call in calls.items()
        }
        in_sql["als_fit"] = timed(
            "b  SELECT als_fit(u, i, r) FROM rated",
            lambda: sql("als_fit(u, i, r)", "FROM rated", 1),
        )
        by_group = {
            name: timed(
                f"d  SELECT g, {name}(...) FROM grouped GROUP BY g",
                lambda c=calls[name]: sql(c, "FROM grouped GROUP BY g", args.groups),
                repeat=1 if name == "random_forest_fit" else 3,
            )
            for name in loops
        }
        peak = python_worker_peak_mib()
        spark.stop()

    print()
    for name in in_process:
        print(
            f"{name:<18} SQL / in-process = {in_sql[name] / in_process[name]:5.2f}  (target <= 1.3)"
        )
    for name in loops:
        print(f"{name:<18} loop / GROUP BY  = {loops[name] / by_group[name]:5.2f}  (target >= 1.6)")
    print(f"Python worker peak resident memory: {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
