"""Faults made by the real database: a table that refuses updates for a while."""

from __future__ import annotations

from django.db import connection


def refuse_updates(table: str, on: bool) -> None:
    """Make the database refuse (``on``) or accept again every update of rows in ``table``."""
    trigger = f"rrr_refuse_{table}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if on:
                cursor.execute(
                    "CREATE OR REPLACE FUNCTION rrr_refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'writes refused by the test'; END $$ LANGUAGE plpgsql"
                )
                cursor.execute(
                    f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION rrr_refuse()"
                )
            else:
                cursor.execute(f"DROP TRIGGER {trigger} ON {table}")
        elif on:
            cursor.execute(
                f"CREATE TRIGGER {trigger} BEFORE UPDATE ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'writes refused by the test'); END"
            )
        else:
            cursor.execute(f"DROP TRIGGER {trigger}")
