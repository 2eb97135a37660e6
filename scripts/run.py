"""`make run`: migrate, create the demo tenant, then serve the console and API with a Celery
worker (and the simulated provider when no real provider key is configured).

Everything runs in the foreground; Ctrl-C stops every child process and the embedded database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    host = env.get("HOST", "127.0.0.1")
    port = env.get("PORT", "8000")
    workers = env.get("WEB_CONCURRENCY", "2")

    simulated = not (env.get("OPENAI_API_KEY") or env.get("ANTHROPIC_API_KEY"))
    sim_url = env.setdefault("SWITCHBOARD_SIMULATOR_URL", "http://127.0.0.1:8790")

    def manage(*args: str) -> None:
        subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)

    manage("migrate_schemas", "--executor=standard", "-v", "0")
    manage("bootstrap_demo")

    children: list[subprocess.Popen] = []
    if simulated:
        sim_port = sim_url.rsplit(":", 1)[1].split("/")[0]
        children.append(
            subprocess.Popen(
                [PY, "-m", "gateway.simulator", "--host", "127.0.0.1", "--port", sim_port],
                cwd=ROOT,
                env=env,
            )
        )
        print(f"  No provider key set: the 'simulated' deployment answers at {sim_url}")
    children.append(
        subprocess.Popen(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "-Q",
                "interactive,bulk,webhooks",
                "--concurrency",
                env.get("CELERY_CONCURRENCY", "2"),
                "--loglevel",
                "INFO",
                "-s",
                str(ROOT / "var" / "celerybeat-schedule"),
            ],
            cwd=ROOT,
            env=env,
        )
    )
    children.append(
        subprocess.Popen(
            [
                PY,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                host,
                "--port",
                port,
                "--workers",
                workers,
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "10",
            ],
            cwd=ROOT,
            env=env,
        )
    )
    print(f"  Serving on http://{host}:{port}/  (Ctrl-C to stop)")

    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                print(f"  A child process exited ({child.args[2]}): stopping.", file=sys.stderr)
                stopping = True
                exit_code = 1
        time.sleep(0.5)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    if not env.get("DATABASE_URL"):
        subprocess.run([PY, "-m", "config.embedded", "stop"], cwd=ROOT, env=env, check=False)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
