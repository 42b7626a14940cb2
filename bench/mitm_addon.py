"""mitmdump addon for the benchmark: route a host to the local upstream, stream SSE.

mitmdump has no `--connect-to`, so this is its equivalent of oisp-sensor's
`--connect-to api.openai.com:443=127.0.0.1:PORT`: the client still CONNECTs to
api.openai.com:443 and sees that name in SNI and Host; only the TCP connection
upstream goes elsewhere. Responses of type text/event-stream are streamed (mitmproxy
buffers whole bodies otherwise, which would make a stream arrive all at once at
the end); other bodies are buffered as mitmdump does by default.

Loaded by bench/run.py with the bench venv's mitmdump:

    mitmdump -s bench/mitm_addon.py --set bench_connect_to=api.openai.com:443=127.0.0.1:PORT
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http


class BenchRoute:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, int], tuple[str, int]] = {}

    def load(self, loader: Any) -> None:
        loader.add_option(
            "bench_connect_to",
            str,
            "",
            "HOST:PORT=ADDR:PORT, comma separated: where to really connect for HOST:PORT.",
        )

    def configure(self, updated: set[str]) -> None:
        from mitmproxy import ctx

        if "bench_connect_to" not in updated:
            return
        self.routes = {}
        for spec in filter(None, ctx.options.bench_connect_to.split(",")):
            source, target = spec.split("=")
            host, port = source.rsplit(":", 1)
            addr, addr_port = target.rsplit(":", 1)
            self.routes[(host, int(port))] = (addr, int(addr_port))

    def server_connect(self, data: Any) -> None:
        address = data.server.address
        if address is not None and (route := self.routes.get((address[0], address[1]))):
            data.server.address = route

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            flow.response.stream = True


addons = [BenchRoute()]
