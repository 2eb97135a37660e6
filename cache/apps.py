from django.apps import AppConfig


class CacheConfig(AppConfig):
    name = "cache"
    label = "answer_cache"
    verbose_name = "Answer cache"
    default_auto_field = "django.db.models.BigAutoField"
