from django.db import connection


def test_tenant_schemas_exist(db, tenant_a, tenant_b):
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM information_schema.schemata")
        schemas = {row[0] for row in cursor.fetchall()}
    assert {tenant_a.schema, tenant_b.schema, "tenant_template"} <= schemas
