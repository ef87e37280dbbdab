"""epsilon-train: train and evaluate Epsilon, and inspect the bundles it writes."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(
    help="Train and evaluate Epsilon (multi-label zero-shot tagging) and inspect model bundles.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Train and evaluate Epsilon, and inspect the model bundles it writes."""


@app.command()
def info(
    bundle: Path = typer.Argument(..., help="A model bundle folder (config.json + model.safetensors)."),
    as_json: bool = typer.Option(False, "--json", help="Print the bundle's config as JSON."),
) -> None:
    """Check a model bundle and show what it holds: model, backbone, words, scores."""
    from .checkpoint import Bundle, BundleError

    try:
        loaded = Bundle.load(bundle)
    except BundleError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2)
    summary = {
        "model": loaded.config.to_dict(),
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "backbone": loaded.backbone,
        "embeddings": loaded.embeddings,
        "seen_labels": len(loaded.seen_labels),
        "unseen_labels": len(loaded.unseen_labels),
        "training": loaded.training,
        "metrics": loaded.metrics,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    cfg = loaded.config
    typer.echo(f"bundle      {Path(bundle).resolve()}")
    typer.echo(
        f"model       Epsilon ({cfg.variant}), M={cfg.num_groups}, d_model={cfg.d_model}, "
        f"depth={cfg.depth}, heads={cfg.heads}, d_w={cfg.d_w}, {summary['parameters']:,} parameters"
    )
    typer.echo(f"backbone    {loaded.backbone.get('name')} ({loaded.backbone.get('weights')})")
    typer.echo(f"embeddings  {loaded.embeddings.get('source')} ({loaded.embeddings.get('dim')}-d)")
    typer.echo(f"labels      {len(loaded.seen_labels)} seen, {len(loaded.unseen_labels)} unseen")
    for key, value in loaded.metrics.items():
        typer.echo(f"metric      {key}: {value}")


def main() -> None:
    app()
