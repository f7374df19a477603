# SPDX-License-Identifier: MIT
# A bounded fork bomb for scenario 9: tries 200 children that sleep 60 s; prints how many it got.
import os
import time

n = 0
for _ in range(200):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    except OSError:
        pass
print("FORKED=%d" % n, flush=True)
