"""Environment classes for the environment tests (imported by the episodes' child processes)."""

from __future__ import annotations

import os
import socket
import time


class Counter:
    """A counter with a target: the reward is 1 when the count reaches it."""

    def reset(self, start: int = 0, target: int = 3, **row) -> str:
        self.count = start
        self._target = target
        return f"The counter is at {start}."

    def add(self, n: int) -> int:
        """Add to the counter.

        Args:
            n: How much to add.
        """
        self.count += n
        return self.count

    def fail(self, why: str) -> str:
        """Raise an error.

        Args:
            why: The error message.
        """
        raise ValueError(why)

    def get_reward(self) -> float:
        return float(self.count == self._target)


class Misbehaving:
    """Tools that break the episode in every way the sandbox must survive."""

    def reset(self, **row) -> None:
        self.calls = 0

    def hang(self) -> str:
        """Never return."""
        while True:
            time.sleep(0.05)

    def allocate(self, megabytes: int) -> int:
        """Allocate memory.

        Args:
            megabytes: How much.
        """
        block = bytearray(megabytes * 1024 * 1024)
        return len(block)

    def crash(self) -> str:
        """End the interpreter at once, as a segfault in a C extension would."""
        os._exit(3)

    def shout(self, megabytes: int) -> str:
        """Print without end.

        Args:
            megabytes: How much to print.
        """
        line = "x" * 1023 + "\n"
        for _ in range(megabytes * 1024):
            print(line, end="")
        return "done"

    def huge(self, megabytes: int) -> str:
        """Return a huge text.

        Args:
            megabytes: How big.
        """
        return "y" * (megabytes * 1024 * 1024)

    def fetch(self, host: str) -> str:
        """Open a connection.

        Args:
            host: Where to.
        """
        with socket.create_connection((host, 80), timeout=2):
            return "connected"

    def spawn(self) -> str:
        """Start a program."""
        import subprocess

        return subprocess.run(["true"]).returncode and "ran" or "ran"
