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
from recsys.models.interactions import lookup_array
from recsys.models.kinds import KINDS, ModelKind, resolve
from recsys.models.registry import Registry
from recsys.models.tuning import best_tuned
from recsys.schemas import Recommendations, ScoredItem
from recsys.service.categories import main_category_mask
from recsys.service.data import engine_for
from recsys.service.filters import NONE as NO_FILTERS
from recsys.service.filters import Filters, filter_mask, passing_ids
from recsys.service.models import loaded
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
    filters: Filters = NO_FILTERS,
) -> Recommendations:
    """The n items most like `item_id` by the chosen model, restricted by `category` and
    `filters` (every line, fallback lines included). When the model has fewer than n
    (an item it never saw, or one without co-occurrences), the `recommend.fallback` chain fills
    the list: semantic neighbours of the product text (ss), then bestsellers of the item's
    category (popularity); every line names the model that produced it.

    Raises NotFound (404) for an id neither in the catalog nor rated, InvalidInput (400) for a
    bad n, model or a negative price, NotTrained (409) when the model was never trained."""
    check_n(n)
    kind = choose_model(settings, model)
    rec = current_model(settings, kind)
    allowed, unknown_category, notes = filter_mask(settings, rec, category, filters)
    item = rec.item_index(item_id)
    lines: list[tuple[str, float, str]] = []  # (item id, score, model)
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
        lines += _fallback_similar(
            settings, rec, item_id, n - len(lines), category, allowed, lines, filters
        )
    if len(lines) < n and (category or filters):
        notes.append(_short_reason(len(lines), n, category, filters))
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
    filters: Filters = NO_FILTERS,
) -> list[tuple[str, float, str]]:
    taken = {item_id, *(i for i, _, _ in have)}
    found: list[tuple[str, float, str]] = []
    for name in settings.recommend.fallback:
        if len(found) >= n:
            break
        kind = resolve(name)
        if kind.role == "search":
            candidates = _semantic_neighbours(settings, item_id, n + len(taken), category, filters)
        elif kind.name == "popularity":
            # the item's own category, unless the client chose categories (theirs win)
            chosen = category or filters.categories
            same = None if chosen else main_category_mask(settings, rec, item_id)
            mask = same if allowed is None else (allowed if same is None else same & allowed)
            picks, scores = rec.top_popular(n + len(taken), allowed=mask)
            candidates = list(zip(rec.item_id_list(picks), scores.tolist(), strict=True))
        else:
            candidates = _other_model_similar(
                settings, kind, item_id, n + len(taken), category, filters
            )
        for cand, score in candidates:
            if cand not in taken and len(found) < n:
                taken.add(cand)
                found.append((cand, score, kind.name))
    return found


def semantically_similar(
    settings: Settings,
    item_id: str,
    n: int = 10,
    category: str | None = None,
    filters: Filters = NO_FILTERS,
) -> Recommendations:
    """The n products whose text (title, category, ...) embeds nearest to `item_id`'s in the
    semantic index (ss: all-MiniLM-L6-v2 + FAISS), restricted by `category` and `filters`. What
    the product page shows beside the collaborative models' similar items.

    Raises InvalidInput (400) for a bad n, NotTrained (409) when ss was never trained, NotFound
    (404) for a product the index does not hold (not in the catalog when ss was trained)."""
    from recsys.models.ss import SemanticIndex

    check_n(n)
    index = loaded(settings, "ss", SemanticIndex).model
    if index.row_of(item_id) is None:
        raise NotFound(
            f"item {item_id!r} is not in semantic index ss {index.version} "
            "(not in the catalog when it was trained)"
        )
    hits = _neighbours_of(settings, index, item_id, n, category, filters)
    short = len(hits) < n and (category or filters)
    notes = [_short_reason(len(hits), n, category, filters)] if short else []
    return Recommendations(
        kind="similar", query=item_id, strategy="ss" if hits else "none",
        model_version=index.version, items=_lines(settings, [(i, s, "ss") for i, s in hits]),
        message="; ".join(notes) or None, model="ss",
    )  # fmt: skip


def _semantic_neighbours(
    settings: Settings, item_id: str, k: int, category: str | None, filters: Filters
) -> list[tuple[str, float]]:
    from recsys.models.ss import SemanticIndex

    try:
        index = loaded(settings, "ss", SemanticIndex).model
    except NotTrained:
        return []
    return _neighbours_of(settings, index, item_id, k, category, filters)


def _neighbours_of(
    settings: Settings, index, item_id: str, k: int, category: str | None, filters: Filters
) -> list[tuple[str, float]]:
    filtered = bool(category or filters)
    hits = index.neighbours(item_id, k * 10 if filtered else k)
    if filtered:
        keep = passing_ids(settings, [i for i, _ in hits], category, filters)
        hits = [(i, s) for i, s in hits if i in keep]
    return hits[:k]


def _other_model_similar(
    settings: Settings,
    kind: ModelKind,
    item_id: str,
    k: int,
    category: str | None,
    filters: Filters,
) -> list[tuple[str, float]]:
    try:
        other = current_model(settings, kind)
    except NotTrained:
        return []
    item = other.item_index(item_id)
    if item is None or not other.known[item]:
        return []
    mask, empty, _ = filter_mask(settings, other, category, filters)
    if empty:
        return []
    picks, scores = other.similar(item, k, mask)
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
    filters: Filters = NO_FILTERS,
) -> Recommendations:
    """Personal picks for a user from their history as it is in the store now (one indexed
    query): the training snapshot plus every rating stored since, and `items` folded in. Items
    the model does not know are skipped and named in the message; items the user rated are never
    picks unless `include_seen`. Strategy: the model kind for a user the model knows, "fold_in"
    for a user it does not (history from the store or `items`), "popular" when nothing in the
    history carries information. Only picks the model scores positively count as personal; when
    fewer than n qualify, bestsellers fill the list (lines named "popularity") and the message
    says why. `category` and `filters` restrict every line, bestsellers included.

    Raises InvalidInput (400) for a bad n or model, NotFound (404) when
    none of `items` is known, NotTrained (409) when the model was never trained."""
    check_n(n)
    kind = choose_model(settings, model)
    rec = current_model(settings, kind)
    allowed, empty, notes = filter_mask(settings, rec, category, filters)
    if empty:
        return Recommendations(
            kind="user", query=user_id, strategy="none", model_version=rec.version, items=[],
            message=empty, model=kind.name,
        )  # fmt: skip
    user = rec.user_index(user_id)
    extra = _fold_in_items(rec, items or [], notes)
    history, ratings, newer = _live_history(settings, rec, kind, user_id, user, extra, notes)
    exclude = None if include_seen else history
    folded = user is None or bool(items)
    if not len(history):  # nothing the model knows about this user
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
    if user is None and not items:
        notes.insert(
            0,
            f"user {user_id!r} is not in model {kind.name} {rec.version}: picks folded in from "
            f"their {len(history)} stored ratings",
        )
    elif newer:
        notes.append(
            f"user {user_id!r} has {newer} rating{'s' if newer > 1 else ''} newer than model "
            f"{kind.name} {rec.version}, folded in at request time"
        )

    picks, scores = rec.recommend(history, ratings, n, exclude, allowed)
    personal = scores > 0  # a zero or negative score says nothing about this user
    picks, scores = picks[personal], scores[personal]
    because = rec.explain(history, ratings, picks) if explain else None
    lines = [
        (i, s, kind.name) for i, s in zip(rec.item_id_list(picks), scores.tolist(), strict=True)
    ]
    if len(lines) < n:
        taken = picks if exclude is None else np.concatenate([exclude, picks])
        fill, fill_scores = rec.top_popular(n - len(lines), exclude=taken, allowed=allowed)
        if len(fill) and not len(lines):
            notes.insert(
                0,
                f"model {kind.name} {rec.version} scores no item positively for user "
                f"{user_id!r} (nothing it learned covers their items, e.g. items bought only "
                "by one-time buyers): most popular items",
            )
        elif len(fill):
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
        notes.append(_short_reason(len(lines), n, category, filters))
    return Recommendations(
        kind="user",
        query=user_id,
        strategy=("fold_in" if folded else kind.name) if len(picks) else "popular",
        model_version=rec.version,
        items=_lines(settings, lines, rec, because),
        message="; ".join(notes) or None,
        model=kind.name,
    )


MAX_NAMED = 5  # unknown items named in a message; the rest are counted


def _live_history(
    settings: Settings,
    rec: Recommender,
    kind: ModelKind,
    user_id: str,
    user: int | None,
    extra: np.ndarray,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray, int]:
    """(model item indexes, raw ratings, how many of them were rated since training) of the
    user's history: `extra` (fold-in items, at the typical rating), the training snapshot, and
    the ratings in the store now, the store winning for an item in several (latest rating).
    Stored items the model does not know are skipped and named in `notes`."""
    r = user_item_rating.c
    with engine_for(settings).connect() as conn:  # the primary key (user_id, item_id) serves it
        rows = conn.execute(select(r.item_id, r.rating).where(r.user_id == user_id)).all()
    trained_items, trained_ratings = rec.seen(user) if user is not None else (EMPTY_I, EMPTY_F)
    stored = lookup_array(rec.item_ids, [row[0] for row in rows])
    unknown = [row[0] for row, idx in zip(rows, stored.tolist(), strict=True) if idx < 0]
    if unknown:
        named = ", ".join(unknown[:MAX_NAMED]) + (
            f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
        )
        notes.append(
            f"skipped {len(unknown)} of the user's rated items unknown to model {kind.name} "
            f"{rec.version} (rated since training; run `recsys train {kind.name}`): {named}"
        )
    known = stored >= 0
    stored_items = stored[known].astype(np.int32)
    stored_ratings = np.array([row[1] for row in rows], dtype=np.float32)[known]
    newer = int((~np.isin(stored_items, trained_items)).sum())
    items = np.concatenate([extra.astype(np.int32), trained_items, stored_items])
    ratings = np.concatenate([
        np.full(len(extra), rec.typical_rating, dtype=np.float32), trained_ratings, stored_ratings
    ])  # fmt: skip
    if not len(items):
        return EMPTY_I, EMPTY_F, 0
    # keep the last occurrence of every item: the store over the snapshot over the fold-in list
    _, first_from_end = np.unique(items[::-1], return_index=True)
    last = np.sort(len(items) - 1 - first_from_end)
    return items[last], ratings[last], newer


def _short_reason(found: int, n: int, category: str | None, filters: Filters = NO_FILTERS) -> str:
    if filters:
        return f"only {found} items pass the filters"
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
