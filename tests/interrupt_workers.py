"""Workers for ``test_interrupt.py``'s process-pool runs (a small module, so that the spawned
pool processes start fast: it imports nothing heavy)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def sleepy_cell(config: dict[str, Any]) -> dict[str, Any]:
    """Leave ``started-<i>-<pid>`` (holding the pid) in ``config["dir"]``, then sleep
    ``config["sleep"]`` seconds."""
    marker = Path(config["dir"], f"started-{config['i']}-{os.getpid()}")
    marker.write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(config["sleep"])
    return {"pid": os.getpid()}
