"""The popularity baseline as a model kind: every user gets the most-interacted items they have
not rated, and the items "like" any item are the bestsellers. It has no hyperparameters, trains in
milliseconds, and is the yardstick every other model is evaluated against (a model that cannot
beat "everyone buys the bestsellers" has learned nothing)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recsys.models.base import ProgressFn, Recommender
from recsys.models.popularity import popularity_scores


class PopularityModel(Recommender):
    kind: ClassVar[str] = "popularity"
    max_trials: ClassVar[int] = 1  # nothing to tune: one trial measures it

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        return None  # nothing to tune

    @classmethod
    def fit(
        cls, ratings: Any, params: dict[str, Any], on_progress: ProgressFn | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if on_progress:
            on_progress(1, 1)
        return {}, {}

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict[str, Any]):
        super().__init__(arrays, manifest)
        self.scores = popularity_scores(self.item_counts).astype(np.float32)
        self.known = self.item_counts > 0

    def similar(
        self, item: int, n: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.top_popular(n, exclude=np.array([item]), allowed=allowed)

    def user_scores(self, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        scores = self.scores.copy()
        scores[~self.known] = -np.inf
        return scores

    def recommend(
        self,
        items: np.ndarray,
        ratings: np.ndarray,
        n: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if allowed is None:  # the precomputed order: no full-catalog pass
            return self.top_popular(n, exclude=exclude)
        return super().recommend(items, ratings, n, exclude, allowed)

    explains: ClassVar[bool] = False  # a bestseller is picked for no item of the user's

    def contributions(
        self, items: np.ndarray, ratings: np.ndarray, picks: np.ndarray
    ) -> np.ndarray:
        return np.zeros((len(picks), len(items)))
