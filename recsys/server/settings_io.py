"""Hand the exact effective Settings to another process: uvicorn workers and training jobs.

Workers get them through an environment variable (uvicorn starts workers from an import string),
training jobs through their stdin (so a secret never lands in a file or a process listing).
"""

from __future__ import annotations

import dataclasses
import json
import os

from recsys.config import SECTIONS, Settings, load_settings

ENV_VAR = "RECSYS_SERVE_SETTINGS"


def settings_to_json(settings: Settings) -> str:
    data = {section: dataclasses.asdict(getattr(settings, section)) for section in SECTIONS}
    data["sources"] = dict(settings.sources)
    return json.dumps(data)


def settings_from_json(text: str) -> Settings:
    data = json.loads(text)
    settings = Settings()
    for section in SECTIONS:
        cls = type(getattr(settings, section))
        setattr(settings, section, cls(**data[section]))
    settings.sources = data.get("sources", {})
    return settings


def settings_from_env() -> Settings:
    """The settings `recsys serve` put in the environment, else the usual load_settings()."""
    text = os.environ.get(ENV_VAR)
    return settings_from_json(text) if text else load_settings()
