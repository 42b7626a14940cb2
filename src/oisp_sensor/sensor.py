"""Assembles a working sensor from a Config: registry, decoder, enrichers, redactor, sinks.

Commands (`record`, `run`, `demo`, `replay`) call these builders; nothing else
constructs layers, so every entry point decodes and redacts identically.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from oisp_sensor import runtime
from oisp_sensor.capture.bridge import Bridge
from oisp_sensor.capture.ca import LocalCA, ca_environment, default_constraint_names
from oisp_sensor.capture.relay import Relay, RelaySettings
from oisp_sensor.capture.relay_thread import RelayThread
from oisp_sensor.capture.trust import ca_status
from oisp_sensor.config import Config, default_config_path
from oisp_sensor.counters import Counters
from oisp_sensor.decode.decoder import Decoder
from oisp_sensor.decode.registry import OISP_PROVIDER_NAMES, ProviderRegistry, ProviderSpec
from oisp_sensor.enrich import default_enrichers
from oisp_sensor.errors import CaptureError
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.privacy.hashing import KeyedHasher
from oisp_sensor.privacy.redact import build_redactor
from oisp_sensor.sinks.base import Sink
from oisp_sensor.sinks.exporters import exporter_sinks
from oisp_sensor.sinks.jsonl import JsonlSink
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.web.app import Dashboard

log = logging.getLogger(__name__)

# Config `api` names -> the decoder shapes a custom endpoint speaks.
_API_SHAPES = {
    "openai": ("openai.responses", "openai.chat", "openai.completions", "openai.embeddings"),
    "anthropic": ("anthropic.messages",),
    "gemini": ("gemini",),
    "ollama": ("ollama.chat", "ollama.generate", "ollama.embed", "openai.chat"),
    "bedrock": ("bedrock.converse", "bedrock.invoke"),
    "cohere": ("cohere.chat",),
}


def build_registry(config: Config) -> ProviderRegistry:
    extra = [
        ProviderSpec(
            id=p.provider,
            oisp_name=p.provider if p.provider in OISP_PROVIDER_NAMES else "other",
            hosts=(p.host,) if p.port is None else (),
            ports=(p.port,) if p.port is not None else (),
            apis=_API_SHAPES[p.api],
            display=p.provider,
            scheme=p.scheme,
        )
        for p in config.providers
    ]
    return ProviderRegistry(extra)


def build_pipeline(
    config: Config,
    *,
    sinks: Sequence[Sink] = (),
    counters: Counters | None = None,
    redaction: str | None = None,
    hasher: KeyedHasher | None = None,
) -> Pipeline:
    counters = counters or Counters()
    hasher = hasher or KeyedHasher.from_file()
    decoder = Decoder(
        registry=build_registry(config),
        hasher=hasher,
        counters=counters,
        record_chunks=config.capture.record_chunks,
    )
    return Pipeline(
        decoder=decoder,
        sinks=sinks,
        counters=counters,
        enrichers=default_enrichers(config.pricing, counters),
        redactor=build_redactor(
            redaction or config.redaction.mode, hasher, config.redaction.patterns, counters
        ),
        idle_timeout_s=config.capture.idle_timeout_s,
    )


# --- the running sensor --------------------------------------------------------------------

# The relay's thread waits at most this long for the GIL while decoding or a sink thread
# runs Python code (the interpreter's default, 5 ms, would show up as latency).
SWITCH_INTERVAL_S = 0.0002


class Sensor:
    """Pipeline, sinks, relay, bridge and dashboard, started and stopped as one.

    `stop()` is the clean path every command takes (Ctrl-C, SIGTERM, the end of a
    `run`): stop accepting, let connections end, then drain the pipeline and flush
    every sink, so nothing that was captured is lost.
    """

    def __init__(
        self,
        config: Config,
        *,
        command: str = "record",
        jsonl: Path | None = None,
        redaction: str | None = None,
        counters: Counters | None = None,
        extra_sinks: Sequence[Sink] = (),
        hasher: KeyedHasher | None = None,
    ) -> None:
        self.config = config
        self.command = command
        self.counters = counters or Counters()
        self.registry = build_registry(config)
        self.jsonl_path = jsonl or (
            Path(config.sinks.jsonl).expanduser() if config.sinks.jsonl else None
        )
        self.db_path = config.db_path
        self.redaction = redaction
        self._extra_sinks = list(extra_sinks)
        self._hasher = hasher
        self.pipeline: Pipeline | None = None
        self.relay: Relay | None = None
        self._relay_thread: RelayThread | None = None
        self.bridge: Bridge | None = None
        self.ca: LocalCA | None = None
        self.dashboard: Dashboard | None = None
        self.web_error = ""  # why the dashboard is not running although enabled
        self._store_sink: StoreSink | None = None
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False

    async def start(self) -> None:
        config = self.config
        self.ca = await asyncio.to_thread(
            LocalCA.load_or_create, None, default_constraint_names(self.registry)
        )
        sinks: list[Sink] = list(self._extra_sinks)
        sinks += exporter_sinks(config.sinks, self.counters)  # OTLP, webhook, Kafka
        if self.jsonl_path is not None:
            rotate = config.sinks.jsonl_rotate_mb * 1024 * 1024
            sinks.append(JsonlSink(self.jsonl_path, rotate_bytes=rotate))
        if self.db_path is not None:
            self._store_sink = StoreSink(
                self.db_path,
                retention_days=config.retention.days,
                prune_every_s=config.retention.prune_every_min * 60,
                counters=self.counters,
            )
            sinks.append(self._store_sink)
        if config.web.enabled:
            self.dashboard = Dashboard(
                config,
                self.counters,
                db_path=self.db_path,
                config_path=Path(config.source) if config.source else default_config_path(),
            )
            sinks.append(self.dashboard.live)
        self.pipeline = build_pipeline(
            config,
            sinks=sinks,
            counters=self.counters,
            redaction=self.redaction,
            hasher=self._hasher,
        )
        await self.pipeline.start()
        try:
            # The relay gets its own thread and loop: bytes must not wait for decoding.
            if sys.getswitchinterval() > SWITCH_INTERVAL_S:
                sys.setswitchinterval(SWITCH_INTERVAL_S)
            settings = RelaySettings.from_config(config.capture)
            ca = self.ca
            self._relay_thread = RelayThread(
                lambda submit: Relay(
                    registry=self.registry,
                    ca=ca,
                    submit=submit,
                    counters=self.counters,
                    settings=settings,
                ),
                self.pipeline.submit,
                limit=self.pipeline.queue.maxsize,
                on_drop=lambda n: self.counters.inc("capture.relay_dropped", n),
                backlogged=self.pipeline.backlogged,
                on_backoff=lambda: self.counters.inc("capture.backpressure_waits"),
            )
            self.relay = await self._relay_thread.start()
            if config.capture.socket:
                await self._start_bridge(config.capture.socket)
            if self.dashboard is not None:
                await self._start_web(self.dashboard)
        except BaseException:
            await self.stop()
            raise
        # Leaves for the busiest hosts, so the first call to each pays no key generation.
        self._tasks.append(asyncio.create_task(self._prewarm(), name="sensor-prewarm"))
        self._tasks.append(asyncio.create_task(self._publish_loop(), name="sensor-state"))

    async def _start_bridge(self, path: str) -> None:
        assert self.pipeline is not None
        pipeline = self.pipeline
        bridge = Bridge(path, pipeline.submit, self.counters, has_room=pipeline.has_room)
        try:
            await bridge.start()
        except (CaptureError, OSError) as e:
            log.warning("unix-socket bridge disabled: cannot listen on %s: %s", path, e)
            return
        self.bridge = bridge

    async def _start_web(self, dashboard: Dashboard) -> None:
        """Serve the dashboard; a taken port disables it (with a warning), not the capture."""
        assert self.pipeline is not None
        try:
            await dashboard.start(
                self.pipeline,
                ca_status=functools.partial(ca_status, default_constraint_names(self.registry)),
                extra_status=lambda: {"command": self.command, "proxy": self.state().proxy},
                on_redaction=self._set_redaction,
                on_retention=self._set_retention,
                on_capture_change=lambda _paused: self._publish_now(),
                started_at=self.started_at,
            )
        except OSError as e:
            web = self.config.web
            self.web_error = f"cannot listen on {web.bind}:{web.port}: {e.strerror or e}"
            log.warning("dashboard disabled: %s (pick another port with --port)", self.web_error)
            self.dashboard = None

    def _set_redaction(self, mode: str) -> None:
        """A new redaction mode from the dashboard, for every event from now on."""
        assert self.pipeline is not None
        current = self.pipeline.redactor
        hasher = getattr(current, "hasher", None) or self._hasher or KeyedHasher.from_file()
        self.redaction = mode
        self.pipeline.redactor = build_redactor(
            mode, hasher, self.config.redaction.patterns, self.counters
        )

    def _set_retention(self, days: float) -> None:
        if self._store_sink is not None:
            self._store_sink.retention.days = days
            self._tasks.append(
                asyncio.create_task(self._store_sink.prune_now(), name="store-prune-now")
            )

    def _publish_now(self) -> None:
        """Pause/resume shows in `oisp-sensor status` at once, not at the next tick."""
        with contextlib.suppress(OSError):
            runtime.publish(self.state())

    @property
    def web_url(self) -> str:
        return self.dashboard.url if self.dashboard is not None else ""

    async def _prewarm(self) -> None:
        if self.ca is not None:
            hosts = [h for s in self.registry.providers[:6] for h in s.hosts[:1] if "*" not in h]
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.ca.prewarm, hosts)

    async def _publish_loop(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                runtime.publish(self.state())
            await asyncio.sleep(5.0)

    def state(self) -> runtime.SensorState:
        return runtime.SensorState(
            started_at=self.started_at,
            command=self.command,
            proxy=self.relay.authority if self.relay is not None else "",
            socket=str(self.bridge.path) if self.bridge is not None else "",
            web_url=self.web_url,
            db_path=str(self.db_path or ""),
            jsonl_path=str(self.jsonl_path or ""),
            paused=bool(self.pipeline and self.pipeline.paused),
            counters=self.counters.snapshot(),
        )

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop capturing, drain the pipeline and flush every sink. Safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.dashboard is not None:
            await self.dashboard.close()
        if self._relay_thread is not None:
            await self._relay_thread.close(grace_s)
        if self.bridge is not None:
            await self.bridge.close()
        if self.pipeline is not None:
            await self.pipeline.stop()
        with contextlib.suppress(OSError):
            runtime.clear()

    async def run_until_signalled(self) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly."""
        async with stop_signals() as stop:
            try:
                await stop.wait()
            finally:
                await self.stop()  # inside the block: a second Ctrl-C cannot cut the flush short

    # --- what a client needs to use the sensor ---------------------------------------------------

    @property
    def proxy_url(self) -> str:
        assert self.relay is not None, "sensor not started"
        return self.relay.url

    def client_environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Variables that send an unmodified program's AI traffic through this sensor.

        Proxy variables in both spellings (curl reads only lower-case http_proxy),
        the CA for runtimes with their own trust store, a NO_PROXY that cannot
        exempt an AI host, and for Node a preload that makes fetch() use the proxy.
        """
        assert self.ca is not None, "sensor not started"
        base = dict(os.environ if base is None else base)
        url = self.proxy_url
        env = {name: url for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
        no_proxy = proxy_exemptions(
            base.get("NO_PROXY") or base.get("no_proxy") or "", self.registry
        )
        for name in ("NO_PROXY", "no_proxy"):
            env[name] = no_proxy
        env.update(ca_environment(self.ca))
        preload = node_preload_path()
        node_options = base.get("NODE_OPTIONS", "")
        if str(preload) not in node_options:
            env["NODE_OPTIONS"] = f'{node_options} --require "{preload}"'.strip()
        return env


@contextlib.asynccontextmanager
async def stop_signals() -> AsyncIterator[asyncio.Event]:
    """An event that SIGINT and SIGTERM set, while the block runs (and cleans up)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def proxy_exemptions(no_proxy: str, registry: ProviderRegistry) -> str:
    """The user's NO_PROXY without entries that would send an AI host around the sensor."""
    ai_hosts = [h.lstrip("*.") for spec in registry.providers for h in spec.hosts]
    kept = []
    for entry in (e.strip() for e in no_proxy.split(",")):
        if not entry:
            continue
        bare = entry.lower().lstrip("*").lstrip(".").split(":", 1)[0]
        if entry == "*" or any(h == bare or h.endswith("." + bare) for h in ai_hosts):
            continue
        kept.append(entry)
    return ",".join(kept)


def node_preload_path() -> Path:
    return Path(__file__).parent / "capture" / "node_preload.cjs"
