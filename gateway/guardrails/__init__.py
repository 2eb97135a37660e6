"""Input and output guards: PII redaction and restoration, injection heuristics, output checks."""
