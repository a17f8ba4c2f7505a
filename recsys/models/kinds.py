"""THE table of model kinds. The registry, training jobs, the server's model loader, the CLI
commands, the HTTP request schemas and `recsys evaluate` / `recsys tune` all read it; nothing else
names a kind. A new algorithm is one module with a `Recommender` subclass plus one entry here
(and its settings section in config.py); tests/test_contract.py then runs it through the
contract every model passes.

Classes are named by import path and imported on first use, so reading the table (e.g. for
`recsys --help`) costs no numpy, scipy or implicit import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from recsys.errors import InvalidInput


@dataclass(frozen=True)
class ModelKind:
    name: str
    target: str  # "module:Class"
    summary: str  # one line for --help and the README
    section: str | None  # settings section of its hyperparameters (None: it has none)
    role: str  # "recommender" (similar items + user picks) or "search" (the semantic index)
    aliases: tuple[str, ...] = ()

    def model_class(self) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            "als", "recsys.models.als:ALSModel", "implicit-feedback ALS matrix factorisation",
            section="als", role="recommender", aliases=("mf",),
        ),
        ModelKind(
            "ease", "recsys.models.ease:EASEModel",
            "EASE, closed-form linear item-item model (Steck 2019)", section="ease",
            role="recommender",
        ),
        ModelKind(
            "itemknn", "recsys.models.itemknn:ItemKNNModel",
            "item-kNN with BM25 or cosine weighting (implicit)", section="itemknn",
            role="recommender",
        ),
        ModelKind(
            "rp3beta", "recsys.models.rp3beta:RP3betaModel",
            "RP3beta random-walk item-item model (Paudel et al. 2016)", section="rp3beta",
            role="recommender",
        ),
        ModelKind(
            "popularity", "recsys.models.popularity_model:PopularityModel",
            "most-interacted items: the baseline", section=None, role="recommender",
        ),
        ModelKind(
            "ss", "recsys.models.ss:SemanticIndex",
            "semantic product search: all-MiniLM-L6-v2 + FAISS", section="ss", role="search",
        ),
    )
}  # fmt: skip

ALIASES: dict[str, str] = {alias: k.name for k in KINDS.values() for alias in k.aliases}
RECOMMENDERS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k.role == "recommender")
# Every name a user may type for a kind: canonical names first, then the aliases.
ACCEPTED_NAMES: tuple[str, ...] = (*KINDS, *ALIASES)


def resolve(name: str, role: str | None = None) -> ModelKind:
    """The kind called `name` (an alias like "mf" gives "als"); InvalidInput (400) otherwise,
    or when it does not play `role`."""
    kind = KINDS.get(ALIASES.get(name, name))
    if kind is None or (role is not None and kind.role != role):
        names = RECOMMENDERS if role == "recommender" else tuple(KINDS)
        raise InvalidInput(f"unknown model {name!r}; use one of {', '.join(names)}")
    return kind


def canonical(name: str) -> str:
    """The canonical name of a kind or alias (unknown names are returned unchanged)."""
    return ALIASES.get(name, name)
