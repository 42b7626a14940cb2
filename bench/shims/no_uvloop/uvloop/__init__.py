"""Makes `import uvloop` fail, so a sensor started with this on PYTHONPATH runs on asyncio's loop.

Used by `bench/run.py --sensor-loop asyncio` to compare the two loops (or to measure
the sensor while it cannot run on uvloop).
"""

raise ImportError("uvloop disabled by bench/shims/no_uvloop")
