"""A test environment that keeps its process busy: a tool that spends CPU, and a ``get_reward``
that takes ``reward_seconds`` (from the row) or fails when the row says ``reward_fails``."""

from __future__ import annotations

import time


class BusyTools:
    def reset(self, reward_seconds: float = 0.0, reward_fails: bool = False, **row) -> None:
        self.reward_seconds, self.reward_fails = float(reward_seconds), bool(reward_fails)

    def spin(self, seconds: float) -> str:
        """Keep the CPU busy.

        Args:
            seconds: CPU seconds to spend
        """
        end = time.process_time() + float(seconds)
        while time.process_time() < end:
            pass
        return "done"

    def get_reward(self) -> float:
        time.sleep(self.reward_seconds)
        if self.reward_fails:
            raise RuntimeError("the reward could not be computed")
        return 1.0
