"""Context added to every event after decoding and before redaction.

Order matters: the process enricher fills in `process` (command line, parents),
which the app enricher identifies; host and cost are independent of both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oisp_sensor.counters import Counters
from oisp_sensor.enrich.apps import AppEnricher
from oisp_sensor.enrich.host import HostEnricher
from oisp_sensor.enrich.pricing import PricingEnricher
from oisp_sensor.enrich.process import ProcessEnricher

if TYPE_CHECKING:
    from oisp_sensor.config import PricingConfig
    from oisp_sensor.pipeline import Enricher

__all__ = [
    "AppEnricher",
    "HostEnricher",
    "PricingEnricher",
    "ProcessEnricher",
    "default_enrichers",
]


def default_enrichers(
    pricing: PricingConfig | None = None, counters: Counters | None = None
) -> list[Enricher]:
    """The enrichers every entry point runs, in the order they must run."""
    return [
        ProcessEnricher(),
        AppEnricher(),
        HostEnricher(),
        PricingEnricher(
            pricing.overrides if pricing else (),
            enabled=pricing.enabled if pricing else True,
            counters=counters,
        ),
    ]
