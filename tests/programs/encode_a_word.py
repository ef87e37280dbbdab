"""Encodes one word with all-MiniLM-L6-v2, as `vocab add` does, then prints which of torch,
transformers and sentence_transformers got imported (none should)."""

from __future__ import annotations

import sys

from trainer.embeddings import load_embeddings

load_embeddings("minilm-l6-v2").vector("zeppelin")
print(sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules))
