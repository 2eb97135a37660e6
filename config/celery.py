"""The Celery app. Broker from CELERY_BROKER_URL, or the embedded filesystem broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    "sweep-lost-reservations": {"task": "usage.sweep_lost_reservations", "schedule": 60.0},
    "purge-expired-audit-records": {"task": "audit.purge_expired_records", "schedule": 24 * 3600.0},
}
app.conf.beat_schedule["recover-stale-jobs"] = {"task": "jobs.recover_stale_jobs", "schedule": 30.0}
app.conf.beat_schedule["evaluate-alerts"] = {"task": "jobs.evaluate_alerts", "schedule": 60.0}
app.conf.beat_schedule["recover-stalled-ingestions"] = {
    "task": "retrieval.recover_stalled_ingestions",
    "schedule": 60.0,
}
app.conf.beat_schedule["purge-expired-answers"] = {
    "task": "cache.purge_expired_answers",
    "schedule": 3600.0,
}
