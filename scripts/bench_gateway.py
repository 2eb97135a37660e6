"""What the gateway costs per request: Switchboard in front of the simulated provider (zero
latency) versus the simulated provider called directly, side by side, in one run.

Switchboard is served the way `make run` serves it (uvicorn, WEB_CONCURRENCY workers, the embedded
PostgreSQL) with the full production path on: key authentication, rate limits and budgets
(admission with a reservation), PII guard, usage and audit recording.

    .venv/bin/python scripts/bench_gateway.py [--requests 2000] [--duration 10]

Latency at concurrency 1 uses one keep-alive HTTP client, alternating direct and gateway calls.
Throughput at concurrency 10 and 50 uses `wrk` (Debian package) when installed, otherwise an
asyncio client. Everything runs on this one machine, load generator included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BODY = {
    "model": "fast",
    "messages": [{"role": "user", "content": "Hello, benchmark."}],
    "max_tokens": 32,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def prepare_tenant(env: dict) -> str:
    """Migrate, provision the bench tenant with generous (but enforced) limits, return a key."""
    subprocess.run([PY, "manage.py", "migrate_schemas", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = """
from decimal import Decimal
from tenants import services
from tenants.models import Plan, Tenant
plan = Plan.objects.filter(slug="bench").first() or services.create_plan(
    name="Bench", slug="bench", monthly_token_limit=10**12, monthly_spend_limit=Decimal(10**7),
    requests_per_minute=10**7, tokens_per_minute=10**9)
tenant = Tenant.objects.filter(slug="bench").first() or services.provision_tenant(
    name="Bench", slug="bench", plan=plan)
print(services.create_api_key(tenant=tenant, name="bench").plaintext)
"""
    out = subprocess.run(
        [PY, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_c1(direct_url: str, gateway_url: str, key: str, n: int) -> dict:
    direct, gateway = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(50):  # warm up both paths (connections, caches, JIT-free Python paths)
            client.post(direct_url, json=BODY)
            client.post(gateway_url, json=BODY, headers={"Authorization": f"Bearer {key}"})
        for _ in range(n):
            start = time.perf_counter()
            client.post(direct_url, json=BODY).raise_for_status()
            direct.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            client.post(
                gateway_url, json=BODY, headers={"Authorization": f"Bearer {key}"}
            ).raise_for_status()
            gateway.append((time.perf_counter() - start) * 1000)
    result = {}
    for p in (50, 95, 99):
        result[f"direct_p{p}"] = percentile(direct, p)
        result[f"gateway_p{p}"] = percentile(gateway, p)
        result[f"added_p{p}"] = percentile(gateway, p) - percentile(direct, p)
    return result


def async_accept(base: str, key: str, n: int) -> tuple[float, float, float]:
    """Time to the 202 of an async feature run (the job is left to the worker, if any)."""
    body = {"input": {"conversation": "Customer: the export fails."}, "mode": "async"}
    headers = {"Authorization": f"Bearer {key}"}
    samples = []
    with httpx.Client(timeout=30) as client:
        for i in range(n + 20):
            start = time.perf_counter()
            response = client.post(
                base + "/api/v1/features/summarizer/runs", json=body, headers=headers
            )
            if response.status_code != 202:
                raise RuntimeError(response.text)
            if i >= 20:
                samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 50), percentile(samples, 95), percentile(samples, 99)


def ttfb(url: str, key: str | None, n: int) -> float:
    body = {**BODY, "stream": True}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    samples = []
    with httpx.Client(timeout=30) as client:
        for i in range(n + 10):
            start = time.perf_counter()
            with client.stream("POST", url, json=body, headers=headers) as response:
                chunks = response.iter_raw()
                next(chunks)
                first = (time.perf_counter() - start) * 1000
                for _ in chunks:
                    pass
            if i >= 10:
                samples.append(first)
    return statistics.median(samples)


def wrk_rps(url: str, key: str | None, connections: int, duration: int) -> float:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    script.write(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(BODY))}\n'
        f'wrk.headers["Content-Type"] = "application/json"\n{auth}'
    )
    script.close()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    errors = [line for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    if errors:
        print("   wrk reported:", "; ".join(errors), file=sys.stderr)
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def python_rps(url: str, key: str | None, connections: int, duration: int) -> float:
    import asyncio

    async def run() -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        done = 0
        stop = time.monotonic() + duration
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def worker():
                nonlocal done
                while time.monotonic() < stop:
                    (await client.post(url, json=BODY, headers=headers)).raise_for_status()
                    done += 1

            await asyncio.gather(*(worker() for _ in range(connections)))
        return done

    return asyncio.run(run()) / duration


class PeakMemory:
    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop:
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.2)

    def stop(self) -> int:
        self._stop = True
        self._thread.join()
        return self.peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", default=os.environ.get("WEB_CONCURRENCY", "2"))
    args = parser.parse_args()

    sim_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}}
    env.update(
        SWITCHBOARD_SIMULATOR_URL=f"http://127.0.0.1:{sim_port}",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        # async runs are only accepted here (no worker runs them): keep them out of the real
        # broker folder and out of the tenant's cap on jobs in flight
        SWITCHBOARD_BROKER_DIR=tempfile.mkdtemp(prefix="bench-broker-"),
        SWITCHBOARD_MAX_JOBS_IN_FLIGHT="1000000",
    )
    key = prepare_tenant(env)
    procs = [
        subprocess.Popen(
            [PY, "-m", "gateway.simulator", "--port", str(sim_port)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                PY,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--port",
                str(web_port),
                "--workers",
                args.workers,
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        ),
    ]
    try:
        direct_url = f"http://127.0.0.1:{sim_port}/v1/chat/completions"
        gateway_url = f"http://127.0.0.1:{web_port}/v1/chat/completions"
        wait_up(f"http://127.0.0.1:{sim_port}/v1/models")
        wait_up(f"http://127.0.0.1:{web_port}/healthz")
        memory = PeakMemory(procs[1].pid)
        print(
            f"machine: {platform.machine()}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total // 2**30} GiB, Python {platform.python_version()}"
        )
        print(f"gateway: uvicorn, {args.workers} workers, embedded PostgreSQL, full path on")
        lat = latency_c1(direct_url, gateway_url, key, args.requests)
        print(f"\nconcurrency 1, {args.requests} requests each (ms):")
        for p in (50, 95, 99):
            print(
                f"  p{p}: direct {lat[f'direct_p{p}']:.2f}  via Switchboard "
                f"{lat[f'gateway_p{p}']:.2f}  added {lat[f'added_p{p}']:.2f}"
            )
        async_lat = async_accept(f"http://127.0.0.1:{web_port}", key, 500)
        print(
            f"\nasync run accepted (202, no provider call), 500 requests (ms): "
            f"p50 {async_lat[0]:.2f}, p95 {async_lat[1]:.2f}, p99 {async_lat[2]:.2f}"
        )
        ttfb_direct = ttfb(direct_url, None, 200)
        ttfb_gateway = ttfb(gateway_url, key, 200)
        print(
            f"\nstream time to first byte (median ms): direct {ttfb_direct:.2f}, "
            f"via Switchboard {ttfb_gateway:.2f}, added {ttfb_gateway - ttfb_direct:.2f}"
        )
        load = wrk_rps if shutil.which("wrk") else python_rps
        print(
            f"\nthroughput ({'wrk' if load is wrk_rps else 'asyncio client'}, "
            f"{args.duration} s each, requests/s):"
        )
        for connections in (10, 50):
            direct_rps = load(direct_url, None, connections, args.duration)
            gateway_rps = load(gateway_url, key, connections, args.duration)
            print(
                f"  concurrency {connections}: direct {direct_rps:.0f}, "
                f"via Switchboard {gateway_rps:.0f}"
            )
        print(
            f"\npeak memory of the Switchboard server (all workers): "
            f"{memory.stop() / 2**20:.0f} MiB"
        )
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
