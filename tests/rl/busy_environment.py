"""A test environment whose one tool keeps the CPU busy for a while (in its episode's process)."""

from __future__ import annotations

import time


class BusyTools:
    def reset(self, **row) -> None:
        pass

    def spin(self, seconds: float) -> str:
        """Keep the CPU busy.

        Args:
            seconds: CPU seconds to spend
        """
        end = time.process_time() + float(seconds)
        while time.process_time() < end:
            pass
        return "done"
