"""Parsers for the Amazon review dumps: 2023, 2018 and 2014, reviews and metadata.

Each parser turns one raw line into a RatingRow or a product dict, or raises BadLine. Typed msgspec
Structs do the decoding: unknown keys are skipped without building Python objects for them.
"""

from __future__ import annotations

import ast
import html
import warnings
from collections.abc import Iterable
from typing import Any

import msgspec

from recsys.ingest.clean import (
    Tally,
    clean_category,
    clean_text,
    parse_price,
    parse_votes,
    strip_keys,
)
from recsys.ingest.rows import (
    BadLine,
    RatingRow,
    check_count,
    check_id,
    check_rating,
    check_timestamp,
    product_row,
)

AMAZON_STARS = (1.0, 5.0)  # every Amazon dump rates 1..5 stars: anything else is a broken line


class Review2023(msgspec.Struct):
    user_id: Any = None
    parent_asin: Any = None
    rating: Any = None
    timestamp: int = 0  # milliseconds
    helpful_vote: int = 0
    verified_purchase: bool | None = None


class ReviewLegacy(msgspec.Struct):  # 2018 and 2014 reviews share their keys
    reviewerID: Any = None
    asin: Any = None
    overall: Any = None
    unixReviewTime: int = 0  # seconds
    verified: bool | None = None
    vote: str | int | None = None  # 2018: a string like "1,234"
    helpful: list[int] | None = None  # 2014: [helpful, total]


class Meta2023(msgspec.Struct):
    parent_asin: Any = None
    title: Any = None
    main_category: Any = None
    store: Any = None
    price: Any = None
    average_rating: float | None = None
    rating_number: int | None = None
    features: list[Any] | None = None
    description: list[Any] | None = None
    categories: list[Any] | None = None
    details: dict[str, Any] | None = None
    images: list[dict[str, Any]] | None = None


class Meta2018(msgspec.Struct):
    asin: Any = None
    title: Any = None
    brand: Any = None
    main_cat: Any = None
    price: Any = None
    category: list[Any] | None = None
    feature: list[Any] | None = None
    description: list[Any] | None = None
    details: dict[str, Any] | None = None
    image: list[Any] | None = None
    imageURL: list[Any] | None = None
    imageURLHighRes: list[Any] | None = None


class Meta2014(msgspec.Struct):
    asin: Any = None
    title: Any = None
    brand: Any = None
    price: Any = None
    imUrl: Any = None
    categories: list[Any] | None = None
    description: Any = None


def literal_eval(text: str) -> Any:
    """ast.literal_eval without its warnings: a line like '\\s' would print "invalid escape
    sequence" once per distinct line (it is still read as the literal it is)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.literal_eval(text)


def _decode(decoder: msgspec.json.Decoder, line: bytes) -> Any:
    # msgspec does not validate the bytes of keys it skips, so check UTF-8 here (ASCII is cheap).
    if not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("invalid_utf8") from None
    try:
        return decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise BadLine(_validation_reason(str(exc)), str(exc)) from None
    except UnicodeDecodeError:
        raise BadLine("invalid_utf8") from None
    except msgspec.DecodeError as exc:
        raise BadLine("invalid_json", str(exc)) from None


def _validation_reason(message: str) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.timestamp`"
    if "- at `$." in message:
        return "wrong_type:" + message.rsplit("- at `$.", 1)[1].rstrip("`").split("[")[0]
    return "wrong_type"


class Parser:
    """Base: `name` is the format, `kind` reviews | products; `tally` counts cleaned-away values.

    `rating_range`: the --rating-range filter (low, high), or None for the format's own rule
    (Amazon: 1..5 stars; generic logs: any finite number)."""

    name = ""
    kind = ""
    default_range: tuple[float, float] | None = AMAZON_STARS

    def __init__(self, rating_range: tuple[float, float] | None = None):
        self.rating_range = rating_range if rating_range is not None else self.default_range
        self.tally = Tally()
        self.warnings: list[str] = []  # said once in the report (e.g. a column left unmapped)

    def parse(self, line: bytes) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def records(
        self, lines: Iterable[tuple[int, Any]], max_bytes: int
    ) -> Iterable[tuple[int, Any]]:
        """(first line number, record bytes, TOO_LONG or a BadLine) from (line number, line): one
        line is one record, except in CSV files (DelimitedParser)."""
        return lines


class Reviews2023(Parser):
    name, kind = "amazon2023", "reviews"
    decoder = msgspec.json.Decoder(Review2023)

    def parse(self, line: bytes) -> RatingRow:
        r = _decode(self.decoder, line)
        return RatingRow(
            check_id(r.user_id, "user"),
            check_id(r.parent_asin, "item"),  # reviews join products on parent_asin
            check_rating(r.rating, self.rating_range),
            check_timestamp(r.timestamp // 1000),
            r.verified_purchase,
            check_count(r.helpful_vote, "helpful_vote"),
        )


class ReviewsLegacy(Parser):
    kind = "reviews"
    decoder = msgspec.json.Decoder(ReviewLegacy)

    def __init__(self, name: str, rating_range: tuple[float, float] | None = None):
        super().__init__(rating_range)
        self.name = name

    def parse(self, line: bytes) -> RatingRow:
        r = _decode(self.decoder, line)
        votes = check_count(r.helpful[0], "helpful") if r.helpful else parse_votes(r.vote, "vote")
        return RatingRow(
            check_id(r.reviewerID, "user"),
            check_id(r.asin, "item"),
            check_rating(r.overall, self.rating_range),
            check_timestamp(r.unixReviewTime),
            r.verified,
            votes,
        )


def _main_image_2023(images: list[dict[str, Any]] | None) -> str | None:
    if not images:
        return None
    main = next((im for im in images if im.get("variant") == "MAIN"), images[0])
    url = main.get("large") or main.get("hi_res") or main.get("thumb")
    return url if isinstance(url, str) else None


def _first_str(*lists: list[Any] | None) -> str | None:
    for values in lists:
        for value in values or ():
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _text_list(values: Any) -> list[str] | None:
    """Feature bullets and description paragraphs: trimmed and unescaped, empty ones dropped.
    (Cheaper than clean_text: these lists are long, and stray HTML in them is harmless.)"""
    if not isinstance(values, list):
        return None
    texts = (v.strip() for v in values if isinstance(v, str))
    return [html.unescape(t) if "&" in t else t for t in texts if t]


class Meta2023Parser(Parser):
    name, kind = "amazon2023", "products"
    decoder = msgspec.json.Decoder(Meta2023)

    def parse(self, line: bytes) -> dict[str, Any]:
        m = _decode(self.decoder, line)
        t = self.tally
        return product_row(
            check_id(m.parent_asin, "item"),
            title=clean_text(m.title, t, "title"),
            main_category=clean_category(m.main_category, t),
            store=clean_text(m.store, t, "store"),
            price=parse_price(m.price, t),
            average_rating=m.average_rating,
            rating_count=m.rating_number,
            image_url=_main_image_2023(m.images),
            features=_text_list(m.features),
            description=_text_list(m.description),
            categories=m.categories,
            details=m.details,
            images=m.images,
        )


class Meta2018Parser(Parser):
    name, kind = "amazon2018", "products"
    decoder = msgspec.json.Decoder(Meta2018)

    def parse(self, line: bytes) -> dict[str, Any]:
        m = _decode(self.decoder, line)
        t = self.tally
        images = m.imageURLHighRes or m.imageURL or m.image
        return product_row(
            check_id(m.asin, "item"),
            title=clean_text(m.title, t, "title"),
            main_category=clean_category(m.main_cat, t),
            store=clean_text(m.brand, t, "store"),
            price=parse_price(m.price, t),
            image_url=_first_str(m.imageURLHighRes, m.imageURL, m.image),
            features=_text_list(m.feature),
            description=_text_list(m.description),
            categories=[c for c in (clean_text(c, Tally(), "x") for c in m.category or []) if c],
            details=strip_keys(m.details),
            images=images,
        )


class Meta2014Parser(Parser):
    """2014 meta lines are Python literals (single quotes): ast.literal_eval, never eval."""

    name, kind = "amazon2014", "products"

    def parse(self, line: bytes) -> dict[str, Any]:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("invalid_utf8") from None
        try:
            raw = msgspec.json.decode(line)  # some re-published 2014 files are strict JSON
        except msgspec.DecodeError:
            try:
                raw = literal_eval(text.strip())
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise BadLine("invalid_literal") from None  # TypeError: e.g. a list as a dict key
        if not isinstance(raw, dict):
            raise BadLine("wrong_type")
        try:
            m = msgspec.convert(raw, Meta2014)
        except msgspec.ValidationError as exc:
            raise BadLine(_validation_reason(str(exc)), str(exc)) from None
        except UnicodeEncodeError:  # a key with a lone surrogate: msgspec matches keys as UTF-8
            raise BadLine("invalid_utf8", "lone surrogate in a key") from None
        t = self.tally
        categories = m.categories or []
        first = categories[0] if categories and isinstance(categories[0], list) else []
        description = clean_text(m.description, t, "text")
        return product_row(
            check_id(m.asin, "item"),
            title=clean_text(m.title, t, "title"),
            main_category=clean_category(first[0], t) if first else None,
            store=clean_text(m.brand, t, "store"),
            price=parse_price(m.price, t),
            image_url=m.imUrl if isinstance(m.imUrl, str) else None,
            categories=categories,
            description=[description] if description else None,
        )
