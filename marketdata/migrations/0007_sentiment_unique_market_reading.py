"""Market-wide sentiment readings (no symbol) get their own unique key on (source, ts).

The key on (source, symbol, ts) never matched a NULL symbol, so a replayed market-wide reading
was stored again. Duplicates already stored are removed first (the earliest row is kept).
"""

from django.db import migrations, models
from django.db.models import Min


def drop_duplicate_market_readings(apps, schema_editor):
    reading = apps.get_model("marketdata", "SentimentReading")
    market = reading.objects.filter(symbol__isnull=True)
    keep = market.values("source", "ts").annotate(first=Min("id")).values_list("first", flat=True)
    market.exclude(id__in=list(keep)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0006_backfill_source_tradingview"),
    ]

    operations = [
        migrations.RunPython(drop_duplicate_market_readings, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="sentimentreading",
            constraint=models.UniqueConstraint(
                condition=models.Q(symbol__isnull=True),
                fields=("source", "ts"),
                name="sentiment_unique_market_reading",
            ),
        ),
    ]
