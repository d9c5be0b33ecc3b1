"""One conversation with one headset (see `core.py` for the state machine).

`core.py` the turn state machine; `reply.py` playing replies (TTS, milestones, what was heard);
`mic.py` the stream clock, echo cancellation and muting; `buttons.py` buttons and gestures; `led.py` the
LED; `commands.py` the command surface (say, listen, stop, volume) shared by the control socket, MQTT and
the skills; `skills.py` what the skills see of the session.
"""

from companion.session.commands import SessionCommands
from companion.session.core import STT_FALLBACK_EVERY_S, STT_FALLBACK_LINE, Session
from companion.session.reply import Milestones, Spoken

__all__ = ["STT_FALLBACK_EVERY_S", "STT_FALLBACK_LINE", "Milestones", "Session", "SessionCommands", "Spoken"]
