"""oisp-sensor: see every AI/LLM API call made on a machine, as OISP v0.1 events."""

__version__ = "0.1.0"
