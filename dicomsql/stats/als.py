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

from typing import Any, Mapping, Sequence

import numpy as np

from .features import class_name
from .options import SEED, Option, boolean, integer, number, parse

__all__ = ["OPTIONS", "MODEL_FIELDS", "initial_factors", "fit", "predict", "recommend"]

OPTIONS: tuple[Option, ...] = (
    Option("rank", 10, integer(1, 200), "Number of latent factors."),
    Option("reg", 0.1, number(0.0), "Regularisation, weighted by each user's and item's number of ratings."),
    Option("iterations", 10, integer(1, 1000), "Alternating sweeps (users then items)."),
    Option("implicit", False, boolean, "Implicit feedback (ratings are interaction strengths)."),
    Option("alpha", 1.0, number(0.0), "Implicit feedback: confidence per unit of rating."),
    Option("seed", 0, SEED, "Seed of the initial factors."),
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


def initial_factors(users: int, items: int, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded starting factors: rows of random normals scaled to unit length (as Spark's)."""
    rng = np.random.default_rng(seed)
    user, item = rng.normal(size=(users, rank)), rng.normal(size=(items, rank))
    return user / np.linalg.norm(user, axis=1, keepdims=True), item / np.linalg.norm(item, axis=1, keepdims=True)


def _solve(owner: np.ndarray, other: np.ndarray, ratings: np.ndarray, factors: np.ndarray, owners: int,
           reg: float, implicit: bool, alpha: float) -> np.ndarray:
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


def fit(users: Sequence[Any], items: Sequence[Any], ratings: Sequence[float],
        options: Mapping[str, str] | None = None, initial: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Factorise the (user, item, rating) triples; rows with a NULL are left out
    (``n_dropped``); repeated pairs are summed for implicit feedback and averaged for
    explicit. ``initial`` overrides the seeded starting factors (for testing)."""
    settings = parse(options, OPTIONS)
    user_names = [class_name(user) for user in users]
    item_names = [class_name(item) for item in items]
    values = np.asarray(ratings, dtype=float)
    keep = np.isfinite(values) & np.array([u is not None and i is not None for u, i in zip(user_names, item_names)], dtype=bool)
    model: dict[str, Any] = {
        "rank": settings["rank"], "reg": settings["reg"], "implicit": settings["implicit"], "alpha": settings["alpha"],
        "iterations": settings["iterations"], "n": int(keep.sum()), "n_dropped": int((~keep).sum()),
    }
    if not keep.any():
        return {**model, "error": "no complete rows"}
    known_users, user_index = np.unique(np.array(user_names, dtype=object)[keep], return_inverse=True)
    known_items, item_index = np.unique(np.array(item_names, dtype=object)[keep], return_inverse=True)
    pairs = user_index * len(known_items) + item_index
    unique_pairs, pair_index = np.unique(pairs, return_inverse=True)
    totals = np.bincount(pair_index, weights=values[keep])
    merged = totals if settings["implicit"] else totals / np.bincount(pair_index)
    user_of, item_of = unique_pairs // len(known_items), unique_pairs % len(known_items)
    user_factors, item_factors = initial or initial_factors(len(known_users), len(known_items), settings["rank"], settings["seed"])
    for _ in range(settings["iterations"]):
        user_factors = _solve(user_of, item_of, merged, item_factors, len(known_users), settings["reg"], settings["implicit"], settings["alpha"])
        item_factors = _solve(item_of, user_of, merged, user_factors, len(known_items), settings["reg"], settings["implicit"], settings["alpha"])
    fitted = np.einsum("ij,ij->i", user_factors[user_of], item_factors[item_of])
    rmse = float(np.sqrt(np.mean((merged - fitted) ** 2))) if not settings["implicit"] else None
    return {**model, "users": list(known_users), "items": list(known_items), "user_factors": list(user_factors),
            "item_factors": list(item_factors), "rmse": rmse}


def predict(model: Mapping[str, Any], users: Sequence[Any], items: Sequence[Any]) -> np.ndarray:
    """The predicted rating (explicit) or preference score (implicit) of each (user, item);
    NaN for a user or item the model has not seen (cold start)."""
    user_position = {name: index for index, name in enumerate(model["users"])}
    item_position = {name: index for index, name in enumerate(model["items"])}
    user_rows = np.array([user_position.get(class_name(user), -1) for user in users], dtype=int)
    item_rows = np.array([item_position.get(class_name(item), -1) for item in items], dtype=int)
    user_factors, item_factors = np.asarray(model["user_factors"], dtype=float), np.asarray(model["item_factors"], dtype=float)
    scores = np.einsum("ij,ij->i", user_factors[np.clip(user_rows, 0, None)], item_factors[np.clip(item_rows, 0, None)])
    return np.where((user_rows >= 0) & (item_rows >= 0), scores, np.nan)


def recommend(model: Mapping[str, Any], user: Any, k: int) -> list[tuple[str, float, int]]:
    """The ``k`` items with the highest predicted score for ``user``: (item, score, rank),
    best first; empty for a user the model has not seen. Rated items are not excluded
    (anti-join the ratings for that)."""
    name = class_name(user)
    if name not in model["users"]:
        return []
    scores = np.asarray(model["item_factors"], dtype=float) @ np.asarray(model["user_factors"][model["users"].index(name)], dtype=float)
    best = np.argsort(-scores, kind="stable")[:k]
    return [(model["items"][index], float(scores[index]), rank) for rank, index in enumerate(best, start=1)]
