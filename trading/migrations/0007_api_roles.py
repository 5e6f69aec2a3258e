"""The API's roles as Django groups: viewer < trader < admin (rrr_site.api.roles)."""

from django.db import migrations

ROLES = ("viewer", "trader", "admin")


def create_roles(apps, schema_editor):
    group = apps.get_model("auth", "Group")
    for name in ROLES:
        group.objects.get_or_create(name=name)


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("trading", "0006_order_request_key"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
