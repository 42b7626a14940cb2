"""Requests to a known AI host that no decoder recognises (a new endpoint, say).

They still become an ai.request/ai.response pair with what can be known — method,
path, status, sizes, timing, errors — flagged `completeness: partial`, so a user
never sees nothing where something happened.
"""

from __future__ import annotations

from typing import Any

from oisp_sensor.decode.providers.base import ApiDecoder, DecodedRequest, HttpRequest


class UnknownEndpoint(ApiDecoder):
    name = "unknown"
    request_type = "other"

    def matches(self, req: HttpRequest) -> bool:
        # Reads (model lists, file downloads) are not AI calls; anything that sends is.
        return req.method in ("POST", "PUT", "PATCH")

    def decode_request(self, req: HttpRequest) -> DecodedRequest:
        body: Any = req.json()
        model = body.get("model") if isinstance(body, dict) else None
        streaming = isinstance(body, dict) and body.get("stream") is True
        return DecodedRequest(
            data={"request_type": "other", "streaming": streaming},
            model=model if isinstance(model, str) else None,
            streaming=streaming,
            partial_reason=f"no decoder for {req.method} {req.path}",
        )
