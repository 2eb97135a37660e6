"""Hybrid retrieval beats lexical and vector retrieval alone on the labelled help-center set
(tests/retrieval/data: 62 articles, 66 keyword- and paraphrase-style queries)."""

import pytest

from retrieval import benchmark

pytestmark = pytest.mark.django_db


def test_hybrid_beats_each_retriever_on_the_labelled_set(tenant_a):
    queries = benchmark.load_queries()
    assert len(queries) >= 50
    with tenant_a.context():
        benchmark.ingest_articles(benchmark.load_articles())
        quality = {mode: benchmark.evaluate(queries, mode=mode) for mode in benchmark.MODES}
    hybrid = quality["hybrid"]
    for single in ("lexical", "vector"):
        assert hybrid.recall_at_5 > quality[single].recall_at_5, quality
        assert hybrid.mrr > quality[single].mrr, quality
    assert hybrid.recall_at_5 >= 0.9
