"""Cost of the PII guard per request: Presidio recognizers on 1 KB and 10 KB inputs, without PII,
with typical PII (an e-mail and a phone number per KB) and with dense PII (an e-mail, card,
phone number and IBAN every ~250 characters), plus what each recognizer costs on the dense input.

Usage: .venv/bin/python scripts/bench_pii.py [--phone-regions US,GB,DE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.guardrails.pii import (
    DEFAULT_PHONE_REGIONS,
    PiiVault,
    Redactor,
    _blank_out,
    redact_messages,
)

PLAIN = (
    "Hello, I cannot export my monthly report since yesterday; the button spins and nothing "
    "happens. Invoice INV-2024-0193, plan Business v2.3, 14 seats, error 502 at 10:30. "
)
TYPICAL = "Please reply to jane.doe@example.com or call me on +1 415-555-0132. "
DENSE = (
    "Please refund jane.doe@example.com, card 4111 1111 1111 1111, phone "
    "+1 415-555-0132, IBAN DE89 3704 0044 0532 0130 00. "
)


def sample(size: int, pii: str, every: int) -> str:
    """``size`` characters of ticket text with ``pii`` inserted every ``every`` characters."""
    out = ""
    while len(out) < size:
        chunk = (PLAIN * (every // len(PLAIN) + 1))[: max(every - len(pii), 0)]
        out += chunk + pii
    return out[:size]


def per_call_ms(fn: Callable[[], object], budget_s: float = 0.5) -> float:
    """Median of five timed batches, in milliseconds per call."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    rounds = max(3, int(budget_s / 5 / once))
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        batches.append((time.perf_counter() - start) / rounds * 1000)
    return statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phone-regions", default=",".join(DEFAULT_PHONE_REGIONS))
    args = parser.parse_args()
    regions = [r.strip().upper() for r in args.phone_regions.split(",") if r.strip()]

    started = time.perf_counter()
    redactor = Redactor(phone_regions=regions)
    redactor.find("warm-up a@example.com +1 415-555-0132 4111 1111 1111 1111")
    build_ms = (time.perf_counter() - started) * 1000
    print(f"phone regions: {','.join(regions)}")
    print(f"building the recognizers: {build_ms:.0f} ms (once per process)\n")

    print("| input | no PII | typical PII | dense PII |")
    print("|---|---|---|---|")
    for size in (1_000, 10_000):
        cells = []
        for text in (
            sample(size, "", 250),
            sample(size, TYPICAL, 1_000),
            sample(size, DENSE, 250),
        ):
            messages = [{"role": "user", "content": text}]
            ms = per_call_ms(lambda m=messages: redact_messages(m, redactor, PiiVault()))
            cells.append(f"{ms:.2f} ms")
        print(f"| {size // 1000} KB | " + " | ".join(cells) + " |")

    dense = sample(1_000, DENSE, 250)
    print("\nper recognizer, 1 KB dense PII:")
    for recognizer, entities in redactor._recognizers:
        ms = per_call_ms(lambda r=recognizer, e=entities: r.analyze(dense, e, None), 0.2)
        print(f"  {type(recognizer).__name__:26s} {ms:.3f} ms")
    others = [f for f in redactor.find(dense) if f.entity_type != "PHONE_NUMBER"]
    for recognizer in redactor._phones:
        region = recognizer.supported_regions[0]
        for label, text in (("as is", dense), ("other PII blanked", _blank_out(dense, others))):
            ms = per_call_ms(lambda r=recognizer, t=text: r.analyze(t, ["PHONE_NUMBER"], None), 0.2)
            print(f"  {f'phone {region}, {label}':26s} {ms:.3f} ms")


if __name__ == "__main__":
    main()
