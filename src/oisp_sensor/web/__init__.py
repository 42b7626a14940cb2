"""The dashboard: an HTTP API under /api/, a WebSocket live feed, and a static page.

The page uses only the API and the WebSocket, so everything it shows is available
to scripts too (OpenAPI description at /api/openapi.json).
"""
