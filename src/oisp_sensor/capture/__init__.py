"""Capture sources (relay, unix-socket bridge) and the local CA that lets the relay see TLS."""
