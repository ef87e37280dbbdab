"""Data files shipped with epsilon-tag (default model, vocabulary lists).

Installed as the package ``epsilon_tag_assets``; find files with
``trainer.assets.asset_path`` rather than by path arithmetic.
"""
