import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Static files (htmx, charts, the API docs' assets) are served by the app itself so that the
# console works with no CDN and no reverse proxy; a deployment may serve /static/ from a proxy
# after `collectstatic` instead.
application = ASGIStaticFilesHandler(get_asgi_application())
