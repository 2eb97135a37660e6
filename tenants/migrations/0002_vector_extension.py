from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector, enabled once in the public schema; every tenant schema sees it on its path."""

    dependencies = [("tenants", "0001_initial")]

    operations = [VectorExtension()]
