"""Collaborative filtering by alternating least squares (ALS) matrix factorisation.

Each user u and item i get a vector of ``rank`` latent factors; a rating is predicted as
their dot product. Like Spark ML's ``ALS`` (regularisation weighted by the number of
ratings, "ALS-WR"):

- explicit feedback minimises ``sum (r_ui - x_u . y_i)^2 + reg (sum n_u |x_u|^2 + sum n_i |y_i|^2)``;
- implicit feedback (Hu, Koren and Volinsky) treats every (user, item) pair as a preference
  ``p_ui`` (1 when rated, else 0) with confidence ``1 + alpha |r_ui|``, over all pairs.

Each half-step solves one small ridge problem per user (then per item), batched in numpy.
Users and items are kept as text (any SQL type; see :func:`class_name`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..options import SEED, Option, boolean, integer, number
from .family import Family, Unfit, complete
from .features import class_name

__all__ = [
    "OPTIONS",
    "MODEL_FIELDS",
    "SUMMARY_FIELDS",
    "FAMILY",
    "initial_factors",
    "fit",
    "predict",
    "recommend",
    "summary",
]

OPTIONS: tuple[Option, ...] = (
    Option("rank", 10, "Number of latent factors.", integer(1, 200)),
    Option(
        "reg",
        0.1,
        "Regularisation, weighted by each user's and item's number of ratings.",
        number(0.0),
    ),
    Option("iterations", 10, "Alternating sweeps (users then items).", integer(1, 1000)),
    Option("implicit", False, "Implicit feedback (ratings are interaction strengths).", boolean),
    Option("alpha", 1.0, "Implicit feedback: confidence per unit of rating.", number(0.0)),
    Option("seed", 0, "Seed of the initial factors.", SEED),
)

MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("users", "array<string>"),
    ("items", "array<string>"),
    ("user_factors", "array<array<double>>"),
    ("item_factors", "array<array<double>>"),
    ("rank", "bigint"),
    ("reg", "double"),
    ("implicit", "boolean"),
    ("alpha", "double"),
    ("iterations", "bigint"),
    ("rmse", "double"),
    ("n", "bigint"),
    ("n_dropped", "bigint"),
    ("error", "string"),
)

#: (column, SQL type) of ``summary``: one row per user (``kind`` ``user``), then per item
#: (``item``), with its latent factors and their length (``norm``). Factors compare users
#: (or items) with each other: a dot product of two item rows' factors, divided by their
#: norms, is their cosine similarity; a norm near 0 is a user or item the model says little
#: about (few ratings, strongly regularised).
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = (
    ("kind", "string"),
    ("id", "string"),
    ("norm", "double"),
    ("factors", "array<double>"),
)

FAMILY = Family(
    OPTIONS,
    MODEL_FIELDS,
    SUMMARY_FIELDS,
    recorded=("rank", "reg", "implicit", "alpha", "iterations"),
)


def initial_factors(users: int, items: int, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded starting factors: rows of random normals scaled to unit length (as Spark's)."""
    rng = np.random.default_rng(seed)
    user, item = rng.normal(size=(users, rank)), rng.normal(size=(items, rank))
    return user / np.linalg.norm(user, axis=1, keepdims=True), item / np.linalg.norm(
        item, axis=1, keepdims=True
    )


def _solve(
    owner: np.ndarray,
    other: np.ndarray,
    ratings: np.ndarray,
    factors: np.ndarray,
    owners: int,
    reg: float,
    implicit: bool,
    alpha: float,
) -> np.ndarray:
    """New factors of every owner (user or item) given the other side's ``factors``: one
    regularised least-squares problem per owner, all solved at once."""
    rank = factors.shape[1]
    counts = np.bincount(owner, minlength=owners).astype(float)
    vectors = factors[other]
    if implicit:
        confidence = alpha * np.abs(ratings)
        weights, targets = confidence, (1 + confidence) * (ratings > 0)
    else:
        weights, targets = np.ones(len(ratings)), ratings
    gram = np.zeros((owners, rank, rank))
    np.add.at(gram, owner, vectors[:, :, None] * vectors[:, None, :] * weights[:, None, None])
    right = np.zeros((owners, rank))
    np.add.at(right, owner, vectors * targets[:, None])
    if implicit:
        gram += factors.T @ factors
    gram += reg * counts[:, None, None] * np.eye(rank)
    solved = np.zeros((owners, rank))
    rated = counts > 0
    solved[rated] = np.linalg.solve(gram[rated], right[rated][:, :, None])[:, :, 0]
    return solved


def fit(
    users: Sequence[Any],
    items: Sequence[Any],
    ratings: Sequence[float],
    options: Mapping[str, str] | None = None,
    initial: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Factorise the (user, item, rating) triples; rows with a NULL are left out
    (``n_dropped``); repeated pairs are summed for implicit feedback and averaged for
    explicit. ``initial`` overrides the seeded starting factors (for testing)."""
    settings = FAMILY.settings(options)
    user_names = np.array([class_name(user) for user in users], dtype=object)
    item_names = np.array([class_name(item) for item in items], dtype=object)
    values = np.asarray(ratings, dtype=float)
    rows = complete(user_names, item_names, values)
    return FAMILY.model(
        settings,
        rows.counts(),
        lambda: _factorise(
            rows.take(user_names), rows.take(item_names), rows.take(values), settings, initial
        ),
    )


def _factorise(
    user_names: np.ndarray,
    item_names: np.ndarray,
    values: np.ndarray,
    settings: dict[str, Any],
    initial: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    """The alternating sweeps over complete (user, item, rating) rows."""
    if len(values) == 0:
        raise Unfit("no complete rows")
    known_users, user_index = np.unique(user_names, return_inverse=True)
    known_items, item_index = np.unique(item_names, return_inverse=True)
    pairs = user_index * len(known_items) + item_index
    unique_pairs, pair_index = np.unique(pairs, return_inverse=True)
    totals = np.bincount(pair_index, weights=values)
    merged = totals if settings["implicit"] else totals / np.bincount(pair_index)
    user_of, item_of = unique_pairs // len(known_items), unique_pairs % len(known_items)
    user_factors, item_factors = initial or initial_factors(
        len(known_users), len(known_items), settings["rank"], settings["seed"]
    )
    for _ in range(settings["iterations"]):
        user_factors = _solve(
            user_of,
            item_of,
            merged,
            item_factors,
            len(known_users),
            settings["reg"],
            settings["implicit"],
            settings["alpha"],
        )
        item_factors = _solve(
            item_of,
            user_of,
            merged,
            user_factors,
            len(known_items),
            settings["reg"],
            settings["implicit"],
            settings["alpha"],
        )
    fitted = np.einsum("ij,ij->i", user_factors[user_of], item_factors[item_of])
    rmse = float(np.sqrt(np.mean((merged - fitted) ** 2))) if not settings["implicit"] else None
    return {
        "users": list(known_users),
        "items": list(known_items),
        "user_factors": list(user_factors),
        "item_factors": list(item_factors),
        "rmse": rmse,
    }


def predict(model: Mapping[str, Any], users: Sequence[Any], items: Sequence[Any]) -> np.ndarray:
    """The predicted rating (explicit) or preference score (implicit) of each (user, item);
    NaN for a user or item the model has not seen (cold start)."""
    user_position = {name: index for index, name in enumerate(model["users"])}
    item_position = {name: index for index, name in enumerate(model["items"])}
    user_rows = np.array([user_position.get(class_name(user), -1) for user in users], dtype=int)
    item_rows = np.array([item_position.get(class_name(item), -1) for item in items], dtype=int)
    user_factors, item_factors = (
        np.asarray(model["user_factors"], dtype=float),
        np.asarray(model["item_factors"], dtype=float),
    )
    scores = np.einsum(
        "ij,ij->i",
        user_factors[np.clip(user_rows, 0, None)],
        item_factors[np.clip(item_rows, 0, None)],
    )
    return np.where((user_rows >= 0) & (item_rows >= 0), scores, np.nan)


def recommend(model: Mapping[str, Any], user: Any, k: int) -> list[tuple[str, float, int]]:
    """The ``k`` items with the highest predicted score for ``user``: (item, score, rank),
    best first; empty for a user the model has not seen. Rated items are not excluded
    (anti-join the ratings for that)."""
    name = class_name(user)
    if name not in model["users"]:
        return []
    scores = np.asarray(model["item_factors"], dtype=float) @ np.asarray(
        model["user_factors"][model["users"].index(name)], dtype=float
    )
    best = np.argsort(-scores, kind="stable")[:k]
    return [
        (model["items"][index], float(scores[index]), rank)
        for rank, index in enumerate(best, start=1)
    ]


def summary(model: Mapping[str, Any]) -> Iterator[tuple]:
    """One row per user, then per item (see :data:`SUMMARY_FIELDS`): kind, id, norm,
    factors. A model without factors (``error``) has no rows."""
    for kind in ("user", "item"):
        names, factors = model.get(f"{kind}s"), model.get(f"{kind}_factors")
        if names is None or factors is None:
            return
        for name, vector in zip(names, factors):
            values = np.asarray(vector, dtype=float)
            yield kind, name, float(np.linalg.norm(values)), values.tolist()
