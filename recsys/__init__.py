"""recsys: recommendations and semantic search from Amazon-style review dumps."""

__version__ = "0.1.0"
