"""Per-key memory of a rule across windows: consecutive breaches before firing, clears before resolving, cooldown."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class KeyState:
    """State of one (rule, feature, slice) key of one model version."""

    breach_streak: int = 0
    clear_streak: int = 0
    firing: bool = False
    cooldown_left: int = 0
    last_value: float = 0.0
    last_severity: str | None = None

    def observe(self, breached: bool, *, fire_after: int, clear_after: int, cooldown: int) -> None:
        """One judged window. A window where the key was not judged (too few samples) is not observed."""
        if breached:
            self.breach_streak += 1
            self.clear_streak = 0
        else:
            self.clear_streak += 1
            self.breach_streak = 0
        if self.firing:
            if self.clear_streak >= clear_after:
                self.firing = False
                self.cooldown_left = cooldown
        elif self.cooldown_left > 0:
            self.cooldown_left -= 1
        elif self.breach_streak >= fire_after:
            self.firing = True

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyState:
        return cls(**d)
