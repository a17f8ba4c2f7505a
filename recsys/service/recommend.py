"""Recommendations as the adapters see them: similar items and a user's picks, from any model
of the table, with the fallback chain for items a model has nothing to say about.

Reads are served from the process-wide cache of loaded models (recsys.service.models) and are
thread-safe: a model's arrays are never written after load.
"""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import func, select

from recsys.config import Settings
from recsys.errors import InvalidInput, NotFound, NotTrained
from recsys.models.base import EMPTY_F, EMPTY_I, Recommender
from recsys.models.kinds import KINDS, ModelKind, resolve
from recsys.models.registry import Registry
from recsys.models.tuning import best_tuned
from recsys.schemas import Recommendations, ScoredItem
from recsys.service.categories import category_mask, main_category_mask
from recsys.service.data import engine_for
from recsys.service.models import loaded
from recsys.store.categories import in_categories, resolve_category
from recsys.store.queries import products_by_id, result_line
from recsys.store.tables import product_catalog, user_item_rating

MAX_N = 1000
AUTO = "auto"
AUTO_CHECK_SECONDS = 1.0
_auto_choice: dict[str, tuple[float, str]] = {}  # models dir -> (checked at, kind)


def choose_model(settings: Settings, model: str | None = None) -> ModelKind:
    """The recommender to answer with: `model` (a kind or alias), else `recommend.model`;
    "auto" is the kind that validated best in `recsys tune` when it is trained, else als.
    InvalidInput (400) for an unknown name."""
    name = model or settings.recommend.model
    if name != AUTO:
        return resolve(name, "recommender")
    key = str(settings.models_dir)
    cached = _auto_choice.get(key)
    now = time.monotonic()
    if cached is not None and now - cached[0] < AUTO_CHECK_SECONDS:
        return KINDS[cached[1]]
    best = best_tuned(settings.models_dir)
    registry = Registry(settings.models_dir)
    chosen = "als"
    if best in KINDS and KINDS[best].role == "recommender" and registry.current(best):
        chosen = best
    _auto_choice[key] = (now, chosen)
    return KINDS[chosen]


def current_model(settings: Settings, kind: ModelKind) -> Recommender:
    """The live version of a recommender kind; NotTrained (409) when none is published."""
    return loaded(settings, kind.name, kind.model_class().load).model


def check_n(n: int) -> None:
    if not 1 <= n <= MAX_N:
        raise InvalidInput(f"n must be between 1 and {MAX_N}, got {n}")


# ---- similar items -----------------------------------------------------------------------
def similar_items(
    settings: Settings,
    item_id: str,
    n: int = 10,
    category: str | None = None,
    model: str | None = None,
) -> Recommendations:
    """The n items most like `item_id` by the chosen model. When the model has fewer than n
    (an item it never saw, or one without co-occurrences), the `recommend.fallback` chain fills
    the list: semantic neighbours of the product text (ss), then bestsellers of the item's
    category (popularity); every line names the model that produced it.

    Raises NotFound (404) for an id neither in the catalog nor rated, InvalidInput (400) for a
    bad n, model or category, NotTrained (409) when the model was never trained."""
    check_n(n)
    kind = choose_model(settings, model)
    rec = current_model(settings, kind)
    allowed, unknown_category = category_mask(settings, rec, category)
    item = rec.item_index(item_id)
    lines: list[tuple[str, float, str]] = []  # (item id, score, model)
    notes: list[str] = []
    if unknown_category:
        _why_unknown(settings, rec, kind, item_id, item)  # an unknown item is still a 404
        return Recommendations(
            kind="similar", query=item_id, strategy="none", model_version=rec.version, items=[],
            message=unknown_category, model=kind.name,
        )  # fmt: skip
    if item is not None and rec.known[item]:
        picks, scores = rec.similar(item, n, allowed)
        ids = rec.item_id_list(picks)
        lines = [(i, s, kind.name) for i, s in zip(ids, scores.tolist(), strict=True)]
    else:
        notes.append(_why_unknown(settings, rec, kind, item_id, item))
    if len(lines) < n:
        lines += _fallback_similar(settings, rec, item_id, n - len(lines), category, allowed, lines)
    if len(lines) < n and category:
        notes.append(f"only {len(lines)} items in category {category!r} qualify")
    strategy = lines[0][2] if lines else "none"
    return Recommendations(
        kind="similar",
        query=item_id,
        strategy=kind.name if strategy == kind.name else strategy,
        model_version=rec.version,
        items=_lines(settings, lines),
        message="; ".join(notes) or None,
        model=kind.name,
    )


def _why_unknown(
    settings: Settings, rec: Recommender, kind: ModelKind, item_id: str, item: int | None
) -> str:
    """Why the model has nothing for an item; NotFound (404) when nobody knows the item."""
    if item is not None:
        return rec.why_unknown(item)
    with engine_for(settings).connect() as conn:
        ratings = conn.scalar(
            select(func.count())
            .select_from(user_item_rating)
            .where(user_item_rating.c.item_id == item_id)
        )
        in_catalog = conn.scalar(
            select(func.count())
            .select_from(product_catalog)
            .where(product_catalog.c.item_id == item_id)
        )
    if ratings:
        return (
            f"item {item_id!r} has {ratings} ratings that model {kind.name} {rec.version} "
            f"predates: run `recsys train {kind.name}`"
        )
    if in_catalog:
        return (
            f"item {item_id!r} is in the catalog but nobody has rated it, so collaborative "
            "filtering knows nothing about it"
        )
    raise NotFound(f"unknown item {item_id!r}: not in the catalog and never rated")


def _fallback_similar(
    settings: Settings,
    rec: Recommender,
    item_id: str,
    n: int,
    category: str | None,
    allowed: np.ndarray | None,
    have: list[tuple[str, float, str]],
) -> list[tuple[str, float, str]]:
    taken = {item_id, *(i for i, _, _ in have)}
    found: list[tuple[str, float, str]] = []
    for name in settings.recommend.fallback:
        if len(found) >= n:
            break
        kind = resolve(name)
        if kind.role == "search":
            candidates = _semantic_neighbours(settings, item_id, n + len(taken), category)
        elif kind.name == "popularity":
            same = main_category_mask(settings, rec, item_id)
            mask = same if allowed is None else (allowed if same is None else same & allowed)
            picks, scores = rec.top_popular(n + len(taken), allowed=mask)
            candidates = list(zip(rec.item_id_list(picks), scores.tolist(), strict=True))
        else:
            candidates = _other_model_similar(settings, kind, item_id, n + len(taken), category)
        for cand, score in candidates:
            if cand not in taken and len(found) < n:
                taken.add(cand)
                found.append((cand, score, kind.name))
    return found


def _semantic_neighbours(
    settings: Settings, item_id: str, k: int, category: str | None
) -> list[tuple[str, float]]:
    from recsys.models.ss import SemanticIndex

    try:
        index = loaded(settings, "ss", SemanticIndex).model
    except NotTrained:
        return []
    hits = index.neighbours(item_id, k if not category else k * 10)
    if category:  # known to exist: category_mask answered unknown names before the chain
        names = resolve_category(engine_for(settings), category)
        rows = products_by_id(engine_for(settings), [i for i, _ in hits])
        hits = [(i, s) for i, s in hits if in_categories(rows.get(i), names)]
    return hits[:k]


def _other_model_similar(
    settings: Settings, kind: ModelKind, item_id: str, k: int, category: str | None
) -> list[tuple[str, float]]:
    try:
        other = current_model(settings, kind)
    except NotTrained:
        return []
    item = other.item_index(item_id)
    if item is None or not other.known[item]:
        return []
    picks, scores = other.similar(item, k, category_mask(settings, other, category)[0])
    return list(zip(other.item_id_list(picks), scores.tolist(), strict=True))


# ---- a user's picks ----------------------------------------------------------------------
def recommend_user(
    settings: Settings,
    user_id: str,
    n: int = 10,
    *,
    include_seen: bool = False,
    items: list[str] | None = None,
    category: str | None = None,
    explain: bool = False,
    model: str | None = None,
) -> Recommendations:
    """Personal picks for a user from their rated items (strategy: the model kind), or for a
    user the model does not know, picks folded in from `items` ("fold_in") or the bestsellers
    ("popular"). Only picks the model scores positively count as personal; when fewer than n
    qualify, bestsellers fill the list (lines named "popularity") and the message says so.

    Raises InvalidInput (400) for a bad n, model or category, NotFound (404) when none of
    `items` is known, NotTrained (409) when the model was never trained."""
    check_n(n)
    kind = choose_model(settings, model)
    rec = current_model(settings, kind)
    allowed, unknown_category = category_mask(settings, rec, category)
    if unknown_category:
        return Recommendations(
            kind="user", query=user_id, strategy="none", model_version=rec.version, items=[],
            message=unknown_category, model=kind.name,
        )  # fmt: skip
    user = rec.user_index(user_id)
    notes: list[str] = []
    seen_items, seen_ratings = rec.seen(user) if user is not None else (EMPTY_I, EMPTY_F)
    extra = _fold_in_items(rec, items or [], notes)
    if len(extra):
        extra = extra[~np.isin(extra, seen_items)]
        seen_items = np.concatenate([seen_items, extra])
        seen_ratings = np.concatenate(
            [seen_ratings, np.full(len(extra), rec.typical_rating, dtype=np.float32)]
        )
    exclude = None if include_seen else seen_items
    if not len(seen_items):  # unknown user, nothing to fold in
        picks, scores = rec.top_popular(n, allowed=allowed)
        notes.insert(
            0, f"user {user_id!r} is not in model {kind.name} {rec.version}: most popular items"
        )
        lines = [
            (i, s, "popularity")
            for i, s in zip(rec.item_id_list(picks), scores.tolist(), strict=True)
        ]
        return Recommendations(
            kind="user", query=user_id, strategy="popular", model_version=rec.version,
            items=_lines(settings, lines), message="; ".join(notes) or None, model=kind.name,
        )  # fmt: skip

    picks, scores = rec.recommend(seen_items, seen_ratings, n, exclude, allowed)
    personal = scores > 0  # a zero or negative score says nothing about this user
    picks, scores = picks[personal], scores[personal]
    because = rec.explain(seen_items, seen_ratings, picks) if explain else None
    lines = [
        (i, s, kind.name) for i, s in zip(rec.item_id_list(picks), scores.tolist(), strict=True)
    ]
    if len(lines) < n:
        taken = picks if exclude is None else np.concatenate([exclude, picks])
        fill, fill_scores = rec.top_popular(n - len(lines), exclude=taken, allowed=allowed)
        if len(fill):
            notes.append(
                f"{len(lines)} of {n} picks from {kind.name} (it scores no other item "
                f"positively for this user); {len(fill)} bestsellers fill the list"
            )
        lines += [
            (i, s, "popularity")
            for i, s in zip(rec.item_id_list(fill), fill_scores.tolist(), strict=True)
        ]
        if because is not None:
            because = because + [EMPTY_I for _ in fill]
    if len(lines) < n:
        notes.append(_short_reason(len(lines), n, category))
    return Recommendations(
        kind="user",
        query=user_id,
        strategy=("fold_in" if items else kind.name) if len(picks) else "popular",
        model_version=rec.version,
        items=_lines(settings, lines, rec, because),
        message="; ".join(notes) or None,
        model=kind.name,
    )


def _short_reason(found: int, n: int, category: str | None) -> str:
    if category:
        return f"only {found} items in category {category!r} qualify"
    return f"only {found} items qualify (the user has rated the rest of the catalog)"


def _fold_in_items(rec: Recommender, item_ids: list[str], notes: list[str]) -> np.ndarray:
    if not item_ids:
        return EMPTY_I
    found = {i: rec.item_index(i) for i in dict.fromkeys(item_ids)}
    unknown = [i for i, idx in found.items() if idx is None]
    known = np.array([idx for idx in found.values() if idx is not None], dtype=np.int32)
    if unknown and not len(known):
        raise NotFound(
            f"none of the given items are known to model {rec.version}: {', '.join(unknown)}"
        )
    if unknown:
        notes.append(f"ignored items unknown to the model: {', '.join(unknown)}")
    return known


def _lines(
    settings: Settings,
    lines: list[tuple[str, float, str]],
    rec: Recommender | None = None,
    because: list[np.ndarray] | None = None,
) -> list[ScoredItem]:
    """Result lines with catalog fields, fetched in ONE query for picks and explanations."""
    because_ids = (
        [rec.item_id_list(b) for b in because] if because is not None and rec is not None else None
    )
    ids = [i for i, _, _ in lines]
    wanted = ids if because_ids is None else list({*ids, *(i for g in because_ids for i in g)})
    catalog = products_by_id(engine_for(settings), wanted)
    out = []
    for pos, (item_id, score, producer) in enumerate(lines):
        reasons = None
        if because_ids is not None:
            reasons = [(catalog.get(b) or {}).get("title") or b for b in because_ids[pos]]
        out.append(result_line(item_id, score, catalog.get(item_id), reasons, producer))
    return out
