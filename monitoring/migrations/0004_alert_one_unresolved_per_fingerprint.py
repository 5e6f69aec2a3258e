from django.db import migrations, models


def resolve_duplicates(apps, schema_editor):
    """Fold older unresolved duplicates (opened by concurrent raises) into the newest one."""
    Alert = apps.get_model("monitoring", "Alert")
    using = schema_editor.connection.alias
    seen: dict[tuple, object] = {}
    unresolved = Alert.objects.using(using).exclude(state="resolved").order_by("-last_seen", "-pk")
    for alert in unresolved:
        key = (alert.rule_id, alert.fingerprint)
        keep = seen.get(key)
        if keep is None:
            seen[key] = alert
            continue
        keep.occurrences += alert.occurrences
        keep.deduplicated += alert.deduplicated
        keep.first_seen = min(keep.first_seen, alert.first_seen)
        keep.save(update_fields=["occurrences", "deduplicated", "first_seen"])
        alert.state, alert.resolved_at = "resolved", alert.last_seen
        alert.resolved_by = f"migration: duplicate of alert {keep.pk}"
        alert.save(update_fields=["state", "resolved_at", "resolved_by"])


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_alert_channel_push"),
    ]

    operations = [
        migrations.RunPython(resolve_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="alert",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state", "resolved"), _negated=True),
                fields=("rule", "fingerprint"),
                name="alert_one_unresolved_per_fingerprint",
            ),
        ),
    ]
