"""Epsilon: the model, its loss and metrics, backbones, word vectors and bundles.

Library code only; the app (``tagger``) imports its model from here, never the reverse.
"""
