"""Output guards: PII the model introduced, citations it made up, forbidden terms it used."""

import pytest

from gateway.guardrails.output import (
    check_citations,
    find_forbidden_terms,
    new_pii_in_output,
    redact_output,
)
from gateway.guardrails.pii import PiiVault, get_redactor

EMAIL = "jane.doe@example.com"
PHONE = "+1 415-555-0132"


@pytest.fixture(scope="module")
def redactor():
    return get_redactor()


@pytest.fixture
def vault(redactor):
    vault = PiiVault()
    redactor.redact(f"I am {EMAIL}, call me on {PHONE}", vault)
    return vault


def leaked(text, findings):
    return [(f.entity_type, text[f.start : f.end]) for f in findings]


def test_pii_from_the_input_is_not_new(redactor, vault):
    output = vault.restore("We will write to <EMAIL_ADDRESS_1> and call <PHONE_NUMBER_1>.")
    assert new_pii_in_output(output, vault, redactor) == []


def test_pii_the_input_did_not_contain_is_reported(redactor, vault):
    output = f"Sure, {EMAIL} — or write to ceo@example.org, card 4111 1111 1111 1111."
    assert leaked(output, new_pii_in_output(output, vault, redactor)) == [
        ("EMAIL_ADDRESS", "ceo@example.org"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
    ]


def test_a_known_value_reformatted_by_the_model_is_not_new(redactor, vault):
    output = "Reach Jane at JANE.DOE@EXAMPLE.COM or (415) 555-0132."
    assert new_pii_in_output(output, vault, redactor) == []
    other = "Or call (415) 555-0199."
    assert leaked(other, new_pii_in_output(other, vault, redactor)) == [
        ("PHONE_NUMBER", "(415) 555-0199")
    ]


def test_input_values_can_be_given_instead_of_a_vault(redactor):
    output = f"Copy to {EMAIL} and ops@example.org"
    assert leaked(output, new_pii_in_output(output, {EMAIL}, redactor)) == [
        ("EMAIL_ADDRESS", "ops@example.org")
    ]
    assert len(new_pii_in_output(output, [], redactor)) == 2


def test_placeholders_left_in_the_output_are_not_pii(redactor, vault):
    assert new_pii_in_output("Write to <EMAIL_ADDRESS_1>.", vault, redactor) == []


def test_redact_output_reuses_the_inputs_placeholders_and_leaves_the_vault_alone(redactor, vault):
    output = f"Write to {EMAIL} or ceo@example.org, then {EMAIL} again."
    stored, new = redact_output(output, vault, redactor)
    assert stored == (
        "Write to <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>, then <EMAIL_ADDRESS_1> again."
    )
    assert leaked(output, new) == [("EMAIL_ADDRESS", "ceo@example.org")]
    assert vault.restore("<EMAIL_ADDRESS_2>") == "<EMAIL_ADDRESS_2>"
    assert vault.found == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}


def test_citations_must_name_retrieved_chunks():
    kept, removed = check_citations(["c3", "c9", "c1", "c9", "c3"], {"c1", "c3"})
    assert kept == ["c3", "c1"]
    assert removed == ["c9"]
    assert check_citations([], {"c1"}) == ([], [])
    assert check_citations(["c1"], set()) == ([], ["c1"])


def test_citation_ids_compare_as_strings():
    kept, removed = check_citations([7, "8"], {"7"})
    assert kept == [7] and removed == ["8"]


def test_forbidden_terms_are_case_insensitive_whole_words():
    text = "Our Competitor-X offers a GUARANTEED refund; classic plans excluded."
    terms = ["guaranteed", "competitor-x", "class", "refund policy", ""]
    assert find_forbidden_terms(text, terms) == ["guaranteed", "competitor-x"]


def test_forbidden_phrases_match_across_whitespace_and_disguises():
    terms = ["free trial", "C++"]
    assert find_forbidden_terms("a FREE\n  trial in C++ today", terms) == ["free trial", "C++"]
    assert find_forbidden_terms("ｆｒｅｅ tr\u200bial", terms) == ["free trial"]
    assert find_forbidden_terms("a freetrial in ABC++", terms) == []


def test_each_forbidden_term_is_reported_once_as_given():
    assert find_forbidden_terms("Refund, refund, REFUND", ["Refund", "Refund"]) == ["Refund"]
    assert find_forbidden_terms("", ["x"]) == [] and find_forbidden_terms("x", []) == []
