import os

import django
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from config.handlers import GatewayASGIHandler  # noqa: E402 - needs the settings loaded

console = ASGIHandler()
gateway = GatewayASGIHandler()


async def application(scope, receive, send):
    """The OpenAI-compatible API (``/v1/``) runs through a lean handler with only the
    middleware it needs (request id, tenant resolution): the console's sessions, CSRF and
    messages have nothing to do there and would cost a thread hop each per request."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http" and scope["path"].startswith("/v1/"):
        await gateway(scope, receive, send)
    else:
        await _static(scope, receive, send)


async def _lifespan(receive, send):
    """On shutdown, write the usage and audit records still queued (worker processes exit
    without running atexit handlers)."""
    import asyncio

    from gateway.recorder import recorder

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await asyncio.to_thread(recorder.flush, 60.0)
            await send({"type": "lifespan.shutdown.complete"})
            return


# Static files (htmx, charts, the API docs' assets) are served by the app itself so that the
# console works with no CDN and no reverse proxy; a deployment may serve /static/ from a proxy
# after `collectstatic` instead.
_static = ASGIStaticFilesHandler(console)
