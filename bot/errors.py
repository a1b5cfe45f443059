"""Errors whose message is written for the person who asked: safe to show as they are."""

from index.errors import IndexError_


class UserFacingError(Exception):
    """Base class: `str(error)` is a polite, complete sentence for the user."""


class BadQuestion(UserFacingError):
    """The question is empty, too long or otherwise unusable."""


class AnswerError(UserFacingError):
    """The answer could not be produced for a reason the user can act on."""


SAFE_ERRORS: tuple[type[Exception], ...] = (UserFacingError, IndexError_)
