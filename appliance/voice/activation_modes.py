"""Which activation mode is in force: the one the user chose, unless something overrides it.

Several parties change how a conversation listens: the user (console keys, `activation.mode` in
config), the fleet or Home Assistant (mute), and calls (a remote caller needs no wake phrase and has
no talk key). If each of them set the mode and remembered "the mode before", one would undo another:
a fleet mute during a call was lifted when the call ended. So nobody sets the mode directly: the user
*chooses* one, others *hold an override* while it applies, and the mode in force is computed from
both, strongest override first.
"""

from __future__ import annotations

from enum import Enum

from appliance.voice.activation import ActivationMode


class ModeOverride(Enum):
    MUTE = "mute"
    """Muted by the fleet, Home Assistant or a clean stop: nothing is heard, whatever else holds."""
    CALL = "call"
    """The conversation talks with a caller in a room: every utterance is a request."""


_STRENGTH = (ModeOverride.MUTE, ModeOverride.CALL)
_FORCES = {ModeOverride.MUTE: ActivationMode.MUTED, ModeOverride.CALL: ActivationMode.ALWAYS}


class ActivationModes:
    def __init__(self, chosen: ActivationMode) -> None:
        self.chosen = chosen
        """The user's own mode (kept while overrides come and go)."""
        self._held: set[ModeOverride] = set()

    def hold(self, override: ModeOverride, on: bool = True) -> None:
        if on:
            self._held.add(override)
        else:
            self._held.discard(override)

    def holds(self, override: ModeOverride) -> bool:
        return override in self._held

    @property
    def effective(self) -> ActivationMode:
        for override in _STRENGTH:
            if override in self._held:
                return _FORCES[override]
        return self.chosen
