"""Built-in offline skills: instant answers for the things a headset wearer asks most.

`SkillsResponder.match(text)` is synchronous, pure and instant (regular expressions over normalised
recogniser text, plus a small number-words parser for durations). It returns a `SkillReply` whose
`action` carries the side effect (set a timer, change the volume, stop speaking); the caller runs the
action when it commits to the reply, so matching a speculative transcript changes nothing.

Matching is anchored on the whole utterance, so it is robust but not over-eager: "stop" and "stop
talking" stop, "I stopped by the store" goes to the language model. The recogniser's punctuation and
case ("What time is it?", "what's the time.") are normalised away first.

Without a language model, `SkillsResponder` is also the default `LLMBackend`: it answers what it can
and says honestly that no language model is configured for anything else.

The pure text work (normalisation, number words, durations, clock times) lives in llm/spoken.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from companion.llm.base import Message
from companion.llm.spoken import (
    format_duration,
    format_time,
    normalize,
    ordinal,
    parse_duration,
    parse_number,
    second_person,
)
from companion.llm.timers import MAX_DELAY_S, TimerKind, Timers

VOLUME_STEP = 10
CAPABILITIES = (
    "tell you the time or the date, check the headset battery, set timers and reminders, "
    "change the volume, repeat what I said, or stop talking"
)


class SkillContext(Protocol):
    """What the skills need from the session that owns them."""

    def battery_percent(self) -> int | None: ...
    def set_volume(self, percent: int) -> None: ...
    def volume(self) -> int: ...
    def stop_speaking(self) -> None: ...
    def last_reply(self) -> str | None: ...
    def now(self) -> datetime: ...
    @property
    def timers(self) -> Timers: ...


@dataclass(frozen=True, slots=True)
class SkillReply:
    """A skill's answer: the words to speak (may be empty), the intent, and the side effect to run.

    `incomplete`: the command lacks a detail and the reply asks for it ("set a timer" - how long?); the
    wearer may still be saying it, so the turn detector does not treat it as a clear end.
    """

    text: str
    intent: str
    action: Callable[[], None] | None = None
    incomplete: bool = False


def _full(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:{pattern})$")


# --------------------------------------------------------------------------- intent patterns

_STOP = _full(
    r"(?:(?:no|wait|ok|okay|oh)\s+)*"
    r"(?:stop(?: it| that| talking| speaking| please| now| there)*|be quiet|quiet(?: please)?|shut up"
    r"|hush|shh+|shush|silence|enough|that is enough|never mind|cancel(?: that| it)?|forget it"
    r"|stop stop(?: stop)*)"
)
_TIME = _full(
    r"(?:(?:do you know|can you tell me|tell me|i want to know|i would like to know|give me|check) )?"
    r"(?:what time is it|what time it is|what is the (?:current )?time|(?:the )?(?:current )?time"
    r"|time check|what time do you have|(?:have you got|have you|do you have|you got|got) the time)"
    r"(?: now| right now| at the moment| please)?"
)
_DATE = _full(
    r"(?:(?:do you know|can you tell me|tell me|i want to know|i would like to know) )?"
    r"(?:what is (?:the )?(?:today's )?date(?: today)?|what is today's date|what date is it(?: today)?"
    r"|what date it is(?: today)?|(?:the |today's )?date(?: today)?|what day is it(?: today)?"
    r"|what day it is(?: today)?|what day is today|what is today|which day is it(?: today)?"
    r"|what day of the week is it(?: today)?|what is the day(?: today)?|what day are we"
    r"|what month is it|what year is it)"
)
_BATTERY = _full(
    r"(?:(?:what is|how is|check|tell me|show me|what about) )?(?:the |my |your )?"
    r"(?:headset |headphones? |earbuds? |device |glasses )?battery"
    r"(?: level| status| life| percentage| charge)?(?: like| at| left| now)?"
    r"|how much (?:battery|charge)(?: is)?(?: left| remaining| do i have| have i got| is there)*"
    r"|is (?:the |my )?(?:headset |device )?battery (?:low|ok|okay|charged|dying|full)"
    r"|how charged is (?:the |my )?(?:headset|device|battery)"
)
_REPEAT = _full(
    r"(?:sorry )?(?:(?:say|repeat) (?:that|it|this|what you said) again|say again|repeat"
    r"(?: that| it| yourself| what you said| the last (?:thing|answer|sentence|reply))?"
    r"|what did you (?:just )?say|come again|pardon(?: me)?|excuse me|one more time"
    r"|what was that(?: again)?|i (?:did not|could not|can not) (?:catch|hear|understand|get)"
    r" (?:that|you|what you said|it))"
)
_HELP = _full(
    r"help(?: me)?|i need help|what can you do(?: for me)?|what can i (?:say|ask)(?: you)?"
    r"|what (?:are|is) your (?:commands|skills|features|abilities|options)|how do i use (?:you|this)"
    r"|what are you able to do|what things can you do|(?:list|tell me) (?:your |the )?(?:commands|skills)"
    r"|what do you do"
)
_VOLUME_UP = _full(
    r"(?:turn|crank|bump|pump) (?:it |the volume |the sound |that |you )?up(?: a bit| a little| more)*"
    r"|(?:turn|crank|bump|pump) up (?:the )?(?:volume|sound)(?: a bit| a little| more)*"
    r"|(?:volume|sound) up(?: a bit| a little| more)*|(?:a bit |a little |much |even )?louder"
    r"|speak up|(?:increase|raise) (?:the )?(?:volume|sound)(?: a bit| a little)?"
    r"|(?:make it|talk|speak) (?:a bit |a little )?louder|i can not hear you(?: well)?"
)
_VOLUME_DOWN = _full(
    r"turn (?:it |the volume |the sound |that |you )?down(?: a bit| a little| more)*"
    r"|turn down (?:the )?(?:volume|sound)(?: a bit| a little| more)*"
    r"|(?:volume|sound) down(?: a bit| a little| more)*|(?:a bit |a little |much |even )?(?:quieter|softer)"
    r"|(?:decrease|lower|reduce) (?:the )?(?:volume|sound)(?: a bit| a little)?"
    r"|(?:make it|talk|speak) (?:a bit |a little )?(?:quieter|softer|lower)|(?:it is |you are )?too loud"
)
_VOLUME_SET = _full(
    r"(?:(?:set|change|turn|put|make) (?:the )?(?:volume|sound|it) (?:to|at)|volume(?: to| at)?)"
    r" (?P<level>.+?)(?: percent)?"
    r"|(?P<max>max|maximum|full) volume"
)
_VOLUME_GET = _full(
    r"what is the volume(?: level| at| set to)?|how loud is (?:it|the volume)|volume level"
    r"|what volume (?:is it|are you)(?: at| on| set to)?"
)
_TIMER_WORDS = r"(?:the |my |that |this |all |all the |all my )*(?:(?P<name>[a-z]+) )?"
_TIMER_CANCEL = _full(
    r"(?:cancel|stop|delete|remove|clear|turn off|end|kill|dismiss|abort|never mind|forget)"
    rf" {_TIMER_WORDS}(?P<kind>timer|timers|reminder|reminders)"
)
_TIMER_STATUS = _full(
    r"how (?:much time|long)(?: is)? (?:left|remaining)(?: on (?:the |my |that )?(?:[a-z]+ )?timer)?"
    r"|how long until (?:the |my )?(?:[a-z]+ )?timer(?: goes off| is done| finishes| rings| ends)?"
    r"|how long (?:does|do) (?:the |my )?timer have(?: left)?"
    r"|(?:what is the )?time (?:left|remaining)(?: on (?:the |my )?(?:[a-z]+ )?timer)?"
    r"|what is left on (?:the |my )?(?:[a-z]+ )?timer|how is (?:the |my )?timer(?: doing| going)?"
    r"|(?:check|show|list) (?:the |my |all )*(?:timers?|reminders?)"
    r"|(?:is there|are there|do i have|have i got) (?:a |any )?(?:timers?|reminders?)"
    r"(?: running| set| going)?"
    r"|what (?:timers|reminders) (?:do i have|are (?:running|set))"
)
_TIMER_SET = [
    _full(
        r"(?:(?:set|start|make|create|put on|give me)(?: me)? )?(?:a |an |the |new )*(?:(?P<name>[a-z]+) )?"
        r"timer (?:for |of |at )?(?P<dur>.+)"
    ),
    _full(r"(?:(?:set|start|make|create|put on|give me)(?: me)? )?(?:a |an )?(?P<dur>.+?) timer"),
    _full(r"count ?down(?: from)? (?P<dur>.+)"),
]
_TIMER_SET_BARE = _full(r"(?:set|start|make|create)(?: me)? (?:a |an |the |new )*timer")
_REMINDER_SET = [
    _full(r"remind me (?:in|after) (?P<dur>.+?)(?: (?:to|that|about|of) (?P<task>.+))?"),
    _full(r"remind me (?:to |that |about |of )?(?P<task>.+) (?:in|after) (?P<dur>.+)"),
    _full(r"in (?P<dur>.+?) remind me(?: (?:to|that|about|of) (?P<task>.+))?"),
    _full(
        r"(?:set|create|add) (?:a |me a )?reminder (?:for|in) (?P<dur>.+?)"
        r"(?: (?:to|that|about|for) (?P<task>.+))?"
    ),
    _full(r"(?:set|create|add) (?:a |me a )?reminder (?:to |that |about )?(?P<task>.+) in (?P<dur>.+)"),
]
_REMINDER_BARE = _full(
    r"remind me(?: (?:to|at|on|about|that|tomorrow|later|tonight)\b.*)?"
    r"|(?:set|create|add) (?:a |me a )?reminder\b.*"
)
_NOT_TIMER_NAMES = {"a", "an", "the", "new", "quick", "countdown", "kitchen", "my", "that", "this", "all"}


class SkillsResponder:
    """Instant offline answers; also the default `LLMBackend` when no language model is configured."""

    name = "skills"

    def __init__(self, context: SkillContext, *, volume_step: int = VOLUME_STEP) -> None:
        if not 1 <= volume_step <= 100:
            raise ValueError(f"volume_step must be 1..100 percent, got {volume_step}")
        self._ctx = context
        self._volume_step = volume_step

    # ---------------------------------------------------------------- matching

    def match(self, text: str) -> SkillReply | None:
        """The skill reply for `text`, or None when no skill applies. No side effects."""
        t = normalize(text)
        if not t:
            return None
        for handler in (
            self._timer_cancel,
            self._timer_status,
            self._reminder_set,
            self._timer_set,
            self._stop,
            self._volume,
            self._time,
            self._date,
            self._battery,
            self._repeat,
            self._help,
        ):
            reply = handler(t)
            if reply is not None:
                return reply
        return None

    def _stop(self, t: str) -> SkillReply | None:
        if _STOP.match(t):
            return SkillReply("", "stop", self._ctx.stop_speaking)
        return None

    def _time(self, t: str) -> SkillReply | None:
        if _TIME.match(t):
            return SkillReply(f"It's {format_time(self._ctx.now())}.", "time")
        return None

    def _date(self, t: str) -> SkillReply | None:
        if not _DATE.match(t):
            return None
        now = self._ctx.now()
        if t == "what year is it":
            return SkillReply(f"It's {now.year}.", "date")
        return SkillReply(f"Today is {now:%A}, {now:%B} {ordinal(now.day)}, {now.year}.", "date")

    def _battery(self, t: str) -> SkillReply | None:
        if not _BATTERY.match(t):
            return None
        percent = self._ctx.battery_percent()
        if percent is None:
            return SkillReply("I can't read the headset battery right now.", "battery")
        low = " You may want to charge it soon." if percent <= 15 else ""
        return SkillReply(f"The headset battery is at {percent} percent.{low}", "battery")

    def _repeat(self, t: str) -> SkillReply | None:
        if not _REPEAT.match(t):
            return None
        last = self._ctx.last_reply()
        if not last or not last.strip():
            return SkillReply("I haven't said anything yet.", "repeat")
        return SkillReply(last, "repeat")

    def _help(self, t: str) -> SkillReply | None:
        if _HELP.match(t):
            return SkillReply(f"I can {CAPABILITIES}. Just ask.", "help")
        return None

    def _volume(self, t: str) -> SkillReply | None:
        current = self._ctx.volume()
        if _VOLUME_GET.match(t):
            return SkillReply(f"The volume is at {current} percent.", "volume.get")
        if _VOLUME_UP.match(t):
            return self._set_volume(current + self._volume_step, current, "volume.up")
        if _VOLUME_DOWN.match(t):
            return self._set_volume(current - self._volume_step, current, "volume.down")
        m = _VOLUME_SET.match(t)
        if m is None:
            return None
        if m["max"]:
            return self._set_volume(100, current, "volume.set")
        level = m["level"]
        parsed = parse_number(level.split(), 0)
        if level in ("max", "maximum", "full"):
            parsed = (100.0, 1)
        if parsed is None or parsed[1] != len(level.split()):
            return SkillReply("Tell me a volume from 0 to 100 percent.", "volume.set")
        return self._set_volume(round(parsed[0]), current, "volume.set")

    def _set_volume(self, target: int, current: int, intent: str) -> SkillReply:
        target = max(0, min(100, target))
        if target == current and intent != "volume.set":
            edge = "maximum" if target == 100 else "minimum"
            return SkillReply(f"The volume is already at the {edge}.", intent)
        return SkillReply(f"Volume {target} percent.", intent, lambda: self._ctx.set_volume(target))

    # ---------------------------------------------------------------- timers and reminders

    def _timer_set(self, t: str) -> SkillReply | None:
        for pattern in _TIMER_SET:
            m = pattern.match(t)
            if m is None:
                continue
            seconds = parse_duration(m["dur"])
            if seconds is None:
                continue
            if not 1 <= seconds <= MAX_DELAY_S:
                return SkillReply("I can set timers from one second up to 24 hours.", "timer.set")
            name = m.groupdict().get("name")
            name = None if name in _NOT_TIMER_NAMES else name
            spoken = format_duration(seconds)
            label = f"{name} timer" if name else f"timer for {spoken}"
            message = f"Time's up! The {label} is done."
            action = self._add_timer(seconds, label, message, "timer")
            what = f"{name.capitalize()} timer" if name else "Timer"
            return SkillReply(f"{what} set for {spoken}.", "timer.set", action)
        if _TIMER_SET_BARE.match(t) or t.startswith(("set a timer", "start a timer")):
            return SkillReply(
                "How long should the timer be? Say, for example, set a timer for five minutes.",
                "timer.set",
                incomplete=True,
            )
        return None

    def _reminder_set(self, t: str) -> SkillReply | None:
        for pattern in _REMINDER_SET:
            m = pattern.match(t)
            if m is None:
                continue
            seconds = parse_duration(m["dur"])
            if seconds is None:
                continue
            if not 1 <= seconds <= MAX_DELAY_S:
                return SkillReply("I can set reminders from one second up to 24 hours ahead.", "reminder.set")
            task = second_person(m["task"]) if m["task"] else ""
            spoken = format_duration(seconds)
            message = f"Reminder: {task}." if task else "This is your reminder."
            label = f"reminder: {task}" if task else "reminder"
            action = self._add_timer(seconds, label, message, "reminder")
            what = f" to {task}" if task else ""
            return SkillReply(f"OK, I'll remind you{what} in {spoken}.", "reminder.set", action)
        if _REMINDER_BARE.match(t):
            return SkillReply(
                "I can set reminders for a time from now. "
                "Say, for example, remind me in ten minutes to call mom.",
                "reminder.set",
                incomplete=True,
            )
        return None

    def _add_timer(self, seconds: float, label: str, message: str, kind: TimerKind) -> Callable[[], None]:
        def action() -> None:
            self._ctx.timers.add(seconds, label, message, kind=kind)

        return action

    def _timer_cancel(self, t: str) -> SkillReply | None:
        m = _TIMER_CANCEL.match(t)
        if m is None:
            return None
        kind: TimerKind = "reminder" if m["kind"].startswith("reminder") else "timer"
        pending = self._ctx.timers.list(kind)
        name = m["name"] if m["name"] not in _NOT_TIMER_NAMES else None
        if name:
            named = [x for x in pending if x.label == f"{name} timer"]
            pending = named or pending
        if not pending:
            return SkillReply(f"There's no {kind} set.", f"{kind}.cancel")
        ids = [x.id for x in pending]

        def action() -> None:
            for timer_id in ids:
                self._ctx.timers.cancel(timer_id)

        n = len(ids)
        text = f"{kind.capitalize()} cancelled." if n == 1 else f"Cancelled {n} {kind}s."
        return SkillReply(text, f"{kind}.cancel", action)

    def _timer_status(self, t: str) -> SkillReply | None:
        if not _TIMER_STATUS.match(t):
            return None
        kind: TimerKind = "reminder" if "reminder" in t else "timer"
        pending = self._ctx.timers.list(kind)
        if not pending:
            return SkillReply(f"You don't have any {kind}s set.", f"{kind}.status")
        if len(pending) == 1:
            x = pending[0]
            return SkillReply(
                f"Your {self._describe(x.label, kind)} has {format_duration(x.remaining_s())} left.",
                f"{kind}.status",
            )
        parts = [
            f"the {self._describe(x.label, kind)} has {format_duration(x.remaining_s())} left"
            for x in pending
        ]
        text = f"You have {len(pending)} {kind}s: " + "; ".join(parts) + "."
        return SkillReply(text, f"{kind}.status")

    @staticmethod
    def _describe(label: str, kind: str) -> str:
        if kind == "reminder":
            return f"reminder to {label.removeprefix('reminder: ')}" if label != "reminder" else "reminder"
        return label

    # ---------------------------------------------------------------- LLMBackend

    async def stream(self, messages: list[Message]) -> AsyncGenerator[str, None]:
        """Answer the last user message as an offline backend, streamed word by word.

        A matching skill runs its action and speaks its reply; anything else gets an honest
        "no language model is configured" answer listing what the skills can do.
        """
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        reply = self.match(user)
        if reply is not None and reply.action is not None:
            reply.action()
        text = (
            reply.text
            if reply is not None
            else f"I don't have a language model configured, so I can't answer that. I can {CAPABILITIES}."
        )
        for word in re.findall(r"\S+\s*", text):
            yield word
            await asyncio.sleep(0)  # stay cancellable between words, like a network stream

    async def aclose(self) -> None:
        """Nothing to release; the session owns the timers."""
