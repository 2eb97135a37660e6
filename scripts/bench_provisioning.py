"""Provisioning time per tenant at 1, 100 and 500 existing tenants, cloning vs migrating.

Runs against a scratch database on the configured server (embedded by default), which it creates
and drops. Usage: .venv/bin/python scripts/bench_provisioning.py [--sizes 1,100,500] [--migrate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,100,500")
    parser.add_argument("--samples", type=int, default=5, help="tenants timed at each size")
    parser.add_argument("--modes", default="migrate,clone")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import get_runner  # noqa: F401  (ensures test utilities are loaded)

    settings.DATABASES["default"]["TEST"]["NAME"] = "bench_provisioning"
    creation = connection.creation
    creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from tenants import services

        rows = []
        for mode in args.modes.split(","):
            settings.TENANT_CREATION_FAKES_MIGRATIONS = mode == "clone"
            created = 0
            for size in sizes:
                while created < size - 1:
                    # Filling up to the size uses the fast path; only the samples are timed.
                    settings.TENANT_CREATION_FAKES_MIGRATIONS = mode == "clone"
                    services.provision_tenant(name=f"{mode} {created}", slug=f"{mode}-{created}")
                    created += 1
                timings = []
                samples = args.samples
                for _ in range(samples):
                    start = time.perf_counter()
                    services.provision_tenant(name=f"{mode} {created}", slug=f"{mode}-{created}")
                    timings.append((time.perf_counter() - start) * 1000)
                    created += 1
                rows.append((mode, size, statistics.median(timings), max(timings)))
                print(
                    f"{mode:8} at {size:4} tenants: median {rows[-1][2]:7.1f} ms,"
                    f" max {rows[-1][3]:7.1f} ms",
                    flush=True,
                )
        print("\n| method | tenants already present | median ms per tenant | max ms |")
        print("|---|---|---|---|")
        for mode, size, median, worst in rows:
            print(f"| {mode} | {size} | {median:.1f} | {worst:.1f} |")
    finally:
        connection.set_schema_to_public()
        creation.destroy_test_db("bench_provisioning", verbosity=0)


if __name__ == "__main__":
    main()
