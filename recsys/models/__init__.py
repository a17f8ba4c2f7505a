"""Trained models (ALS, semantic search, popularity) and the versioned registry they live in."""
