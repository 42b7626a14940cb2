"""Sets the GIL switch interval from BENCH_SWITCH_INTERVAL_S for an experiment.

`bench/run.py --sensor-switch-interval 0.0005` puts this directory on the sensor's
PYTHONPATH: with a helper thread (store writer, attribution) holding the GIL, the
event loop thread waits up to the switch interval (default 5 ms) to get it back; a
shorter interval shows how much of the relay's latency is that wait.
"""

import os
import sys

if value := os.environ.get("BENCH_SWITCH_INTERVAL_S"):
    sys.setswitchinterval(float(value))
