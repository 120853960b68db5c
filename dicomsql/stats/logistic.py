"""Logistic regression, binary and multinomial, by Newton-Raphson (iteratively reweighted
least squares), with optional L2 and L1 penalties.

The model of K classes has one coefficient vector per class after the first (the reference),
``log(P(class k) / P(class 0)) = b0_k + x . b_k``; with two classes that is the usual binary
logistic regression of the second class. Unpenalised fits carry Wald inference equal to
statsmodels' ``Logit`` and ``MNLogit``.

Penalties act on the summed log-likelihood and spare the intercepts:
``-loglik + l1 ||b||_1 + l2 / 2 ||b||^2``, so ``l2 = 1 / C`` for scikit-learn's
``LogisticRegression(C=C)`` and ``l1`` is statsmodels' ``fit_regularized(alpha=l1)``.
L1 fits are solved by L-BFGS-B on the positive and negative parts of the coefficients.
Penalised fits carry no standard errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats
from scipy.special import log_softmax, logsumexp

from ..options import Option, boolean, integer, number
from .family import Family, Rows, Unfit
from .features import Encoding, class_output, encode, labelled_rows
from .inference import design_problem, wald

__all__ = ["OPTIONS", "MODEL_FIELDS", "SUMMARY_FIELDS", "FAMILY", "fit", "predict", "summary"]

OPTIONS: tuple[Option, ...] = (
    Option("intercept", True, "Fit an intercept (one per class after the first).", boolean),
    Option(
        "l2", 0.0, "Ridge penalty on the summed log-likelihood (1/C of scikit-learn).", number(0.0)
    ),
    Option(
        "l1", 0.0, "Lasso penalty on the summed log-likelihood (statsmodels' alpha).", number(0.0)
    ),
    Option(
        "alpha", 0.05, "1 - confidence level of the intervals.", number(0.0, 0.5, open_low=True)
    ),
    Option("max_iter", 100, "At most this many Newton-Raphson steps.", integer(1, 1000)),
    Option(
        "tol", 1e-8, "Convergence: the largest change of a coefficient.", number(0.0, open_low=True)
    ),
)

#: (field, SQL type) of a model. Binary models fill the arrays aligned with ``features``
#: (for the second class); multinomial ones fill the ``class_*`` fields, one row per class
#: after the first.
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("features", "array<string>"),
    ("fields", "array<string>"),
    ("categories", "array<array<string>>"),
    ("classes", "array<string>"),
    ("coef", "array<double>"),
    ("odds_ratio", "array<double>"),
    ("se", "array<double>"),
    ("z", "array<double>"),
    ("p", "array<double>"),
    ("ci_lower", "array<double>"),
    ("ci_upper", "array<double>"),
    ("intercept", "double"),
    ("intercept_se", "double"),
    ("intercept_z", "double"),
    ("intercept_p", "double"),
    ("class_coef", "array<array<double>>"),
    ("class_se", "array<array<double>>"),
    ("class_intercept", "array<double>"),
    ("class_intercept_se", "array<double>"),
    ("log_likelihood", "double"),
    ("log_likelihood_null", "double"),
    ("pseudo_r2", "double"),
    ("lr_test_statistic", "double"),
    ("lr_test_p", "double"),
    ("aic", "double"),
    ("n", "bigint"),
    ("n_dropped", "bigint"),
    ("iterations", "bigint"),
    ("converged", "boolean"),
    ("fit_intercept", "boolean"),
    ("l1", "double"),
    ("l2", "double"),
    ("alpha", "double"),
    ("error", "string"),
)

#: (column, SQL type) of ``summary``: per class after the first, the intercept then each feature.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("class", "string"),
    ("feature", "string"),
    ("coef", "double"),
    ("odds_ratio", "double"),
    ("se", "double"),
    ("z", "double"),
    ("p", "double"),
    ("ci_lower", "double"),
    ("ci_upper", "double"),
)

FAMILY = Family(OPTIONS, MODEL_FIELDS, SUMMARY_FIELDS, recorded=("l1", "l2", "alpha"))


@dataclass(frozen=True)
class Terms:
    """The negative log-likelihood of a multinomial logit over some rows at one parameter
    vector, with its gradient and (unless left out: None) Hessian, flattened as the
    parameters, and the smallest fitted log-probability of a row's own class (about 0 for
    every row: perfect separation). Terms of disjoint rows add up to those of all of them."""

    loss: float
    gradient: np.ndarray
    hessian: np.ndarray | None
    fitted_min: float

    def __add__(self, other: Terms) -> Terms:
        return Terms(
            self.loss + other.loss,
            self.gradient + other.gradient,
            None if self.hessian is None or other.hessian is None else self.hessian + other.hessian,
            min(self.fitted_min, other.fitted_min),
        )


class Likelihood:
    """The penalised negative log-likelihood of a multinomial logit and its derivatives, from
    the :meth:`terms` of its rows (computed once per parameter vector).

    Parameters are a (columns x (K - 1)) matrix flattened in column order: one coefficient
    column per class after the first; design column 0 is the intercept if fitted. ``counts``
    are the rows per class.
    """

    def __init__(self, columns: int, counts: np.ndarray, intercept: bool, l2: float) -> None:
        self.columns, self.counts, self.classes, self.l2 = columns, counts, len(counts), l2
        self.penalised = np.ones(columns)
        if intercept:
            self.penalised[0] = 0.0
        self._last: tuple[bytes, Terms] | None = None

    def terms(self, theta: np.ndarray, hessian: bool) -> Terms:
        """The rows' unpenalised :class:`Terms` at ``theta`` (the Hessian if ``hessian``)."""
        raise NotImplementedError

    def at(self, theta: np.ndarray, hessian: bool = False) -> Terms:
        """:meth:`terms` at ``theta``, remembered for the next calls at the same ``theta``."""
        key = np.asarray(theta, dtype=float).tobytes()
        last = self._last
        if last is None or last[0] != key or (hessian and last[1].hessian is None):
            self._last = last = (key, self.terms(theta, hessian))
        return last[1]

    def shape(self, theta: np.ndarray) -> np.ndarray:
        return theta.reshape(self.classes - 1, self.columns).T

    def loss(self, theta: np.ndarray, hessian: bool = False) -> float:
        """The loss at ``theta``; with ``hessian``, the Hessian there is computed in the same
        pass over the rows (a Newton step will need it)."""
        penalty = 0.5 * self.l2 * float(np.sum(self.penalised[:, None] * self.shape(theta) ** 2))
        return self.at(theta, hessian).loss + penalty

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        penalty = self.l2 * self.penalised[:, None] * self.shape(theta)
        return self.at(theta).gradient + penalty.T.ravel()

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """The observed information (exact Hessian of the loss)."""
        penalty = np.diag(np.tile(self.l2 * self.penalised, self.classes - 1))
        return self.at(theta, hessian=True).hessian + penalty


class _Problem(Likelihood):
    """The likelihood of rows held in memory: a design matrix and each row's class index."""

    def __init__(
        self, design: np.ndarray, target: np.ndarray, classes: int, intercept: bool, l2: float
    ) -> None:
        super().__init__(design.shape[1], np.bincount(target, minlength=classes), intercept, l2)
        self.design, self.target = design, target

    def terms(self, theta: np.ndarray, hessian: bool) -> Terms:
        return logit_terms(self.design, self.target, self.shape(theta), hessian)


def logit_terms(
    design: np.ndarray, target: np.ndarray, coefficients: np.ndarray, hessian: bool = True
) -> Terms:
    """The :class:`Terms` of rows (``design``, class index ``target``) at ``coefficients``
    (columns x classes after the first); the Hessian only if ``hessian``."""
    indicator = np.eye(coefficients.shape[1] + 1)[target][:, 1:]
    eta = design @ coefficients
    log_probabilities = log_softmax(np.column_stack([np.zeros(len(eta)), eta]), axis=1)
    fitted = log_probabilities[np.arange(len(target)), target]
    probabilities = np.exp(log_probabilities)[:, 1:]
    gradient = -design.T @ (indicator - probabilities)
    return Terms(
        -float(np.sum(fitted)),
        gradient.T.ravel(),
        _information(design, probabilities) if hessian else None,
        float(fitted.min()) if len(fitted) else 0.0,
    )


def _information(design: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The Hessian of the negative log-likelihood, block by block of classes."""
    columns, blocks = design.shape[1], probabilities.shape[1]
    hessian = np.empty((blocks * columns, blocks * columns))
    for k in range(blocks):
        for j in range(k, blocks):
            weight = probabilities[:, k] * ((k == j) - probabilities[:, j])
            block = (design * weight[:, None]).T @ design
            hessian[k * columns : (k + 1) * columns, j * columns : (j + 1) * columns] = block
            hessian[j * columns : (j + 1) * columns, k * columns : (k + 1) * columns] = block.T
    return hessian


def _newton(
    problem: Likelihood, start: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, int, bool]:
    """Newton-Raphson with step halving; (parameters, iterations, converged)."""
    theta, loss = start, problem.loss(start, hessian=True)
    for iteration in range(1, max_iter + 1):
        step = np.linalg.solve(problem.hessian(theta), problem.gradient(theta))
        scale = 1.0
        while True:
            candidate = theta - scale * step
            candidate_loss = problem.loss(candidate, hessian=True)
            if candidate_loss <= loss + 1e-12 * abs(loss) or scale < 1e-10:
                break
            scale /= 2
        theta, loss = candidate, candidate_loss
        if np.max(np.abs(scale * step)) < tol:
            return theta, iteration, True
    return theta, max_iter, False


def _lasso(
    problem: Likelihood, start: np.ndarray, l1: float, max_iter: int, tol: float
) -> tuple[np.ndarray, int, bool]:
    """Minimise loss + l1 |penalised parameters| by L-BFGS-B on their positive and negative parts."""
    weights = np.tile(problem.penalised, problem.classes - 1)
    size = len(start)

    def objective(parts: np.ndarray) -> tuple[float, np.ndarray]:
        theta = parts[:size] - parts[size:]
        gradient = problem.gradient(theta)
        value = problem.loss(theta) + l1 * float(weights @ (parts[:size] + parts[size:]))
        return value, np.r_[gradient + l1 * weights, -gradient + l1 * weights]

    free = weights == 0  # intercepts: the positive part alone, unbounded
    bounds = [(None, None) if is_free else (0, None) for is_free in free] + [
        (0, 0) if is_free else (0, None) for is_free in free
    ]
    start_parts = np.r_[
        np.where(free, start, np.clip(start, 0, None)), np.where(free, 0, np.clip(-start, 0, None))
    ]
    result = optimize.minimize(
        objective,
        start_parts,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max(max_iter, 1000), "ftol": 1e-15, "gtol": min(tol, 1e-8)},
    )
    return result.x[:size] - result.x[size:], int(result.nit), bool(result.success)


def _null_log_likelihood(counts: np.ndarray) -> float:
    counts = np.asarray(counts, dtype=float)
    present = counts > 0
    return float(np.sum(counts[present] * np.log(counts[present] / counts.sum())))


def fit(
    labels: Sequence[Any],
    columns: Mapping[str, np.ndarray],
    options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Fit a logistic regression of ``labels`` (any type: booleans, numbers, strings) on the
    feature ``columns`` (numbers as floats with NaN for NULL, strings as object arrays).

    Rows with a NULL are left out (``n_dropped``). A group that cannot be fitted (one class,
    too few rows, constant or collinear features, perfect separation without a penalty)
    gives NULL estimates and ``error`` saying why. Invalid ``options`` raise ``ValueError``.
    """
    settings = FAMILY.settings(options)
    keep, classes, target = labelled_rows(labels, columns)
    rows = Rows(keep)
    encoding, matrix = encode(rows.take(columns), reference=True)
    described = {
        **encoding.as_model(),
        "classes": classes,
        **rows.counts(),
        "fit_intercept": settings["intercept"],
    }
    return FAMILY.model(
        settings,
        described,
        lambda: estimate(
            _fit_problem(matrix, target, classes, encoding.names, settings),
            classes,
            encoding.names,
            settings,
        ),
    )


def _fit_problem(
    matrix: np.ndarray,
    target: np.ndarray,
    classes: list[str],
    features: list[str],
    settings: dict[str, Any],
) -> _Problem:
    """The problem to solve; :class:`Unfit` saying why there is none."""

    def scatter() -> np.ndarray:
        centred = matrix - matrix.mean(axis=0) if settings["intercept"] else matrix
        return centred.T @ centred

    check(len(matrix), len(classes), features, scatter, settings)
    design = np.column_stack([np.ones(len(matrix)), matrix]) if settings["intercept"] else matrix
    return _Problem(design, target, len(classes), settings["intercept"], settings["l2"])


def check(
    n: int,
    classes: int,
    features: Sequence[str],
    scatter: Callable[[], np.ndarray],
    settings: Mapping[str, Any],
) -> None:
    """Raise :class:`Unfit` saying why ``n`` rows of ``classes`` classes cannot be fitted on
    ``features``; ``scatter`` gives their centred (uncentred without intercept) ``X'X``,
    checked for constant and collinear features when the fit is unpenalised."""
    if classes < 2:
        raise Unfit(f"the label needs at least 2 classes, got {classes}")
    parameters = (len(features) + settings["intercept"]) * (classes - 1)
    if n <= parameters:
        raise Unfit(f"{n} complete row(s) for {parameters} parameter(s): need more rows")
    if settings["l1"] == 0 and settings["l2"] == 0:
        problem = design_problem(scatter(), features, centred=settings["intercept"])
        if problem:
            raise Unfit(problem)


def estimate(
    problem: Likelihood,
    classes: list[str],
    features: list[str],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The estimates of the model maximising ``problem`` (see :data:`MODEL_FIELDS`);
    :class:`Unfit` when the classes are perfectly separated."""
    columns, blocks = problem.columns, len(classes) - 1
    start = np.zeros((blocks, columns))
    if settings["intercept"]:  # start from the class frequencies
        counts = problem.counts + 0.5
        start[:, 0] = np.log(counts[1:] / counts[0])
    try:
        if settings["l1"] > 0:
            theta, iterations, converged = _lasso(
                problem, start.ravel(), settings["l1"], settings["max_iter"], settings["tol"]
            )
        else:
            theta, iterations, converged = _newton(
                problem, start.ravel(), settings["max_iter"], settings["tol"]
            )
    except np.linalg.LinAlgError:
        raise Unfit(
            "the Hessian became singular: the classes are (quasi-)perfectly separated; add an l2 penalty"
        ) from None
    penalised = settings["l1"] > 0 or settings["l2"] > 0
    fitted = problem.at(theta)
    if not penalised and (not converged or fitted.fitted_min > -1e-8):
        raise Unfit(
            "the features separate the classes perfectly: the estimates diverge; add an l2 penalty",
            iterations=iterations,
            converged=False,
        )
    loglik = -fitted.loss
    null = _null_log_likelihood(problem.counts)
    statistic = 2 * (loglik - null)
    degrees = len(features) * blocks
    estimates: dict[str, Any] = {
        "log_likelihood": loglik,
        "log_likelihood_null": null,
        "pseudo_r2": 1 - loglik / null if null else np.nan,
        "lr_test_statistic": statistic,
        "lr_test_p": float(scipy_stats.chi2.sf(statistic, degrees)) if degrees else np.nan,
        "aic": -2 * loglik + 2 * len(theta),
        "iterations": iterations,
        "converged": converged,
    }
    coefficients = problem.shape(theta)  # columns x blocks
    standard_errors = None
    if not penalised:
        standard_errors = (
            np.sqrt(np.diag(np.linalg.inv(problem.hessian(theta)))).reshape(blocks, columns).T
        )
    offset = int(settings["intercept"])
    if blocks == 1:
        coef = coefficients[offset:, 0]
        estimates.update(
            coef=coef,
            odds_ratio=np.exp(coef),
            intercept=float(coefficients[0, 0]) if offset else None,
        )
        if standard_errors is not None:
            se = standard_errors[offset:, 0]
            z, p, lower, upper = wald(coef, se, settings["alpha"])
            estimates.update(se=se, z=z, p=p, ci_lower=lower, ci_upper=upper)
            if offset:
                z0, p0, _, _ = wald(coefficients[:1, 0], standard_errors[:1, 0], settings["alpha"])
                estimates.update(
                    intercept_se=float(standard_errors[0, 0]),
                    intercept_z=float(z0[0]),
                    intercept_p=float(p0[0]),
                )
    else:
        estimates.update(
            class_coef=list(coefficients[offset:].T),
            class_intercept=coefficients[0] if offset else None,
        )
        if standard_errors is not None:
            estimates.update(
                class_se=list(standard_errors[offset:].T),
                class_intercept_se=standard_errors[0] if offset else None,
            )
    return estimates


def _coefficients(model: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(intercepts per class after the first, coefficients features x classes-after-first)."""
    if model.get("class_coef") is not None:
        coef = np.asarray(model["class_coef"], dtype=float).T
        intercept = (
            np.asarray(model["class_intercept"], dtype=float)
            if model.get("class_intercept") is not None
            else np.zeros(coef.shape[1])
        )
    else:
        coef = np.asarray(model["coef"], dtype=float).reshape(-1, 1)
        intercept = np.array([model.get("intercept") or 0.0])
    return intercept, coef


def log_probabilities(model: Mapping[str, Any], columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log class probabilities (rows x classes; NaN rows where a feature is NULL)."""
    matrix = Encoding.from_model(model, reference=True).matrix(columns)
    intercept, coef = _coefficients(model)
    eta = np.column_stack([np.zeros(len(matrix)), matrix @ coef + intercept])
    return eta - logsumexp(eta, axis=1, keepdims=True)


def predict(
    model: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    kind: str = "probability",
    wanted: Sequence[Any] | None = None,
) -> np.ndarray:
    """``probability`` (default), ``label`` or ``log_odds`` per row: see
    :func:`dicomsql.stats.features.class_output`."""
    return class_output(log_probabilities(model, columns), model["classes"], kind, wanted)


def summary(model: Mapping[str, Any]) -> Iterator[tuple]:
    """One row per class after the first and estimate (the intercept first), with odds
    ratio and Wald inference (NULL for penalised fits)."""
    if model.get("coef") is None and model.get("class_coef") is None:
        return
    intercept, coef = _coefficients(model)
    binary = model.get("class_coef") is None
    se = model.get("se") if binary else model.get("class_se")
    intercept_se = model.get("intercept_se") if binary else model.get("class_intercept_se")
    se = None if se is None else np.asarray(se, dtype=float).reshape(coef.shape[::-1]).T
    fit_intercept = bool(model.get("fit_intercept"))
    names = (["intercept"] if fit_intercept else []) + list(model["features"])
    for index, name in enumerate(model["classes"][1:]):
        estimates = np.r_[intercept[index : index + 1] if fit_intercept else [], coef[:, index]]
        if se is None:
            inference = [[None] * len(names)] * 5
        else:
            errors = np.r_[
                np.ravel(intercept_se)[index : index + 1] if fit_intercept else [], se[:, index]
            ]
            inference = [errors, *wald(estimates, errors, model["alpha"])]
        for row, feature in enumerate(names):
            yield (
                name,
                feature,
                float(estimates[row]),
                float(np.exp(estimates[row])),
                *(None if values[row] is None else float(values[row]) for values in inference),
            )
