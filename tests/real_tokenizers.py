"""The real tokenizers clients count with (``bpe-openai``: tiktoken's vocabularies and rules,
shipped in the package, never downloaded), as a client would use them."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # bpe-openai loads its vocabularies with a deprecated importlib call
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

O200K = bpe_openai.get_encoding("o200k_base")
CL100K = bpe_openai.get_encoding("cl100k_base")
ENCODINGS = [O200K, CL100K]
