"""The embedded event store: SQLite schema, migrations, retention, queries and reports.

Used by the store sink (writing), and by the CLI, web and TUI (reading).
"""

from oisp_sensor.store.db import EventStore, describe_error, store_files
from oisp_sensor.store.query import EventFilter, StoredEvent, select_events, select_new
from oisp_sensor.store.retention import Retention

__all__ = [
    "EventFilter",
    "EventStore",
    "Retention",
    "StoredEvent",
    "describe_error",
    "select_events",
    "select_new",
    "store_files",
]
