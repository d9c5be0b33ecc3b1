"""Errors of remote engines that the rest of companion handles (kept free of optional dependencies)."""


class SpeechServiceUnavailable(RuntimeError):
    """Every remote speech-recognition endpoint failed; the message lists each one's error.

    The session answers it with a spoken fallback line and keeps listening: the next turn retries.
    """
