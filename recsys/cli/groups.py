"""Sub-command groups shared by several command modules (`train als` here, `train ss` elsewhere)."""

import typer

from recsys.cli.app import app

train_app = typer.Typer(help="Train a model and publish it as a new version.", no_args_is_help=True)
recommend_app = typer.Typer(
    help="Recommendations (similar items, a user's picks) from any trained model.",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="The model registry: list, show, rollback, prune.", no_args_is_help=True
)

app.add_typer(train_app, name="train")
app.add_typer(recommend_app, name="recommend")
app.add_typer(models_app, name="models")
