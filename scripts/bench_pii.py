"""Cost of the PII guard per request: Presidio pattern recognizers on 1 KB and 10 KB inputs,
with and without PII.  Usage: .venv/bin/python scripts/bench_pii.py"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.guardrails.pii import PiiVault, Redactor

PLAIN = (
    "Hello, I cannot export my monthly report since yesterday; the button spins and "
    "nothing happens. Could you have a look at our account settings please? "
)
WITH_PII = (
    "Please refund jane.doe@example.com, card 4111 1111 1111 1111, phone "
    "+1 415-555-0132, IBAN DE89 3704 0044 0532 0130 00. "
)


def measure(redactor: Redactor, text: str, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        redactor.redact(text, PiiVault())
    return (time.perf_counter() - start) / rounds * 1000


def main() -> None:
    started = time.perf_counter()
    redactor = Redactor()
    redactor.redact("warm up a@b.co", PiiVault())
    print(
        f"building the recognizers: {(time.perf_counter() - started) * 1000:.0f} ms (once per process)"
    )
    print("| input | without PII | with PII |")
    print("|---|---|---|")
    for size in (1_000, 10_000):
        plain = (PLAIN * (size // len(PLAIN) + 1))[:size]
        mixed = (PLAIN + WITH_PII) * (size // (len(PLAIN) + len(WITH_PII)) + 1)
        mixed = mixed[:size]
        rounds = 300 if size == 1_000 else 60
        print(
            f"| {size // 1000} KB | {measure(redactor, plain, rounds):.2f} ms |"
            f" {measure(redactor, mixed, rounds):.2f} ms |"
        )


if __name__ == "__main__":
    main()
