"""The end-of-turn decision table, without I/O: what the words and the voice say, in, a decision out.

`TurnDetector` (companion/stt/turn.py) gathers the inputs (the endpointer's silence, the transcript, the
audio model's answer) and acts on the `Decision`; keeping the table here lets it be read and tested as a
table, with no audio, threads or clocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from companion.stt.text import looks_complete

__all__ = ["UNSURE_MAX_WORDS", "WAKE_RULE", "Decision", "decide", "text_cue", "wake_rule"]

# Transcripts up to this many words that `recognised` rejects wait `unsure_ms` when no audio model answers:
# hesitation fragments that read complete are short ("what is that", "turn the volume"); long sentences
# are not held.
UNSURE_MAX_WORDS = 5


def text_cue(text: str, recognised: Callable[[str], bool] | None) -> str:
    """What the words say about the end of the turn: "empty" (no words), "fragment" (cannot end there:
    "set a timer for"), "command" (a skill understands it outright) or "open" (reads complete, but nothing
    recognises it: an open question, an unknown command, or a hesitation's first half)."""
    if not text.strip():
        return "empty"
    if not looks_complete(text):
        return "fragment"
    if recognised is not None and recognised(text):
        return "command"
    return "open"


@dataclass(frozen=True)
class Decision:
    """ "end" the turn now, "wait" for more speech or `wait_s` of silence after the speech (then end with
    `reason`), or "drop" it (no words: no turn)."""

    action: Literal["end", "wait", "drop"]
    reason: str = ""
    wait_s: float = 0.0


def decide(
    cue: str,
    words: int,
    *,
    forced: bool,
    model_asked: bool,
    p_complete: float | None,
    threshold: float,
    unsure_s: float,
    fallback_s: float,
    text_rule: bool,
) -> Decision:
    """The decision once the endpointer's silence has run out and the words are known.

    `cue` is `text_cue()` of the transcript ("open-text" when the audio model failed on it), `words` its
    length; `model_asked`: the audio model was started on it, `p_complete` its answer if in. `text_rule`:
    short unrecognised transcripts are held without a model (there is a `recognised` check).

    | words (cue)        | audio model                  | decision                                  |
    |--------------------|------------------------------|-------------------------------------------|
    | any (forced)       | -                            | end now ("forced")                        |
    | empty              | -                            | no turn                                   |
    | fragment           | not asked                    | wait `fallback_ms` of silence ("fallback")|
    | command, or hold 0 | not asked                    | end now ("complete")                      |
    | open               | P >= threshold               | end now ("audio")                         |
    | open               | P < threshold                | wait `unsure_ms` ("held")                 |
    | open               | still running                | wait for it, at most `unsure_ms`          |
    | open, no model     | -                            | short (<= 5 words): wait `unsure_ms`,     |
    |                    |                              | longer: end now ("complete")              |
    """
    if forced:
        return Decision("end", "forced")
    if cue == "empty":
        return Decision("drop")
    if cue == "fragment":
        return Decision("wait", "fallback", fallback_s)
    if cue == "command" or not unsure_s:
        return Decision("end", "complete")
    if model_asked and p_complete is not None:
        if p_complete >= threshold:
            return Decision("end", "audio")
        return Decision("wait", "held", unsure_s)
    if model_asked and cue == "open":
        return Decision("wait", "held", unsure_s)  # the model's answer decides again
    if text_rule and words <= UNSURE_MAX_WORDS:
        return Decision("wait", "held", unsure_s)
    return Decision("end", "complete")


# Wake mode (a `gate` says whether the words so far are addressed: the wake phrase, or the follow-up window).
# What the detector does at each speech event, by what it knows of the utterance's address. Unaddressed
# speech is never joined to what follows and costs no transcription once its first words are known, so a
# bystander's sentences cannot grow into one long turn that swallows the wearer's request.
WAKE_RULE: dict[tuple[str, bool | None], str] = {
    # the utterance has `probe_ms` of speech and no words yet: transcribe its start ("probe")
    ("long", None): "probe",
    ("long", True): "none",
    ("long", False): "none",
    # a short pause (speculate_ms): a draft transcript, whose words also answer the gate
    ("pause", None): "draft",
    ("pause", True): "draft",
    ("pause", False): "skip",
    # speech resumes after a short pause: the same utterance, unless it is known unaddressed
    ("resumed", None): "join",
    ("resumed", True): "join",
    ("resumed", False): "split",
    # the end of speech (end_silence_ms): the decision table once the words are in; unaddressed: end now
    ("end", None): "transcribe",
    ("end", True): "transcribe",
    ("end", False): "end",
    # new speech while an ended utterance waits: an addressed one may continue (the table waits for it),
    # one whose address is not known yet is decided alone ("detach") and the new speech starts afresh
    ("restart", None): "detach",
    ("restart", True): "join",
    ("restart", False): "detach",
}


def wake_rule(event: str, addressed: bool | None) -> str:
    """The wake-mode action for `event` ("long", "pause", "resumed", "end", "restart") given
    what is known of the utterance: addressed (True), not (False), not yet known (None). See WAKE_RULE."""
    try:
        return WAKE_RULE[(event, addressed)]
    except KeyError:
        raise ValueError(f"no wake rule for event {event!r}") from None
