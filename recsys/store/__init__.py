"""The SQL store: tables, engine set-up and the queries the services need."""

from recsys.store.engine import open_store
from recsys.store.tables import metadata, product_catalog, recsys_meta, user_item_rating

__all__ = ["metadata", "open_store", "product_catalog", "recsys_meta", "user_item_rating"]
