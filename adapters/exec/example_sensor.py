#!/usr/bin/env python3
"""An external Outpost adapter: prints readings as JSON lines on stdout.

Each line is one reading object, or a list of them, e.g.
  {"device": "room-1", "metric": "temperature", "value": 21.5, "unit": "C"}
Diagnostics go to stderr; the gateway logs them. SIGTERM asks the script to stop.
"""
import json
import math
import signal
import sys
import time

running = True


def stop(_signum, _frame):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
interval = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
print(f"example sensor started, one sample every {interval}s", file=sys.stderr, flush=True)

while running:
    now_ms = int(time.time() * 1000)
    batch = [
        {
            "device": f"room-{n}",
            "metric": "temperature",
            "value": round(20 + 2 * math.sin(now_ms / 60000 + n), 2),
            "unit": "C",
            "ts": now_ms,
        }
        for n in (1, 2)
    ]
    batch.append({"device": "room-1", "metric": "door_open", "value": int(now_ms / 10000) % 2 == 0})
    print(json.dumps(batch), flush=True)
    time.sleep(interval)
