"""The service functions both adapters (CLI and HTTP) call. No typer, rich or litestar in here.

Heavy libraries (implicit, faiss, torch) are imported inside the functions that need them, so
importing this package stays cheap.
"""

from recsys.service.data import engine_for, ingest, status
from recsys.service.evaluation import evaluate_models
from recsys.service.feedback import record_feedback, upsert_items
from recsys.service.models import list_models, model_info, prune_models, rollback_model
from recsys.service.recommend import recommend_user, similar_items
from recsys.service.search import search, train_ss
from recsys.service.train import train
from recsys.service.tune import tune

__all__ = [
    "engine_for",
    "evaluate_models",
    "ingest",
    "list_models",
    "model_info",
    "prune_models",
    "recommend_user",
    "record_feedback",
    "rollback_model",
    "search",
    "similar_items",
    "status",
    "train",
    "train_ss",
    "tune",
    "upsert_items",
]
