"""One small error tree, so callers can tell whose fault a failure is.

Third-party exceptions are translated at the boundary (`raise X from e`); anything
else escaping a layer is a bug, not an expected failure.
"""


class SensorError(Exception):
    """Base of every error the sensor raises on purpose."""


class ConfigError(SensorError):
    """The configuration (file, environment or flags) is invalid; names the key."""


class DecodeError(SensorError):
    """Captured bytes could not be decoded. Affects only the connection it came from."""


class CaptureError(SensorError):
    """A capture source (relay, bridge, CA) could not do its job."""


class SinkError(SensorError):
    """A sink could not store or export events."""


class StoreError(SensorError):
    """The event store is unusable (corrupt, locked, wrong version)."""
