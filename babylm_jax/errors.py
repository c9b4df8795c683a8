"""Errors meant for people, not for tracebacks.

Anything a user can cause (a bad path, a bad config value, a corpus over budget) raises
`UserError` with one sentence saying what is wrong and what to do. `launch.py` prints it on
stderr and exits with code 2.
"""

EXIT_USER_ERROR = 2


class UserError(Exception):
  """A problem with the user's input; the message is one sentence naming the fix."""


class ConfigError(UserError):
  """A config value that cannot work; the message names the field to change."""


class DataError(UserError):
  """A corpus, tokenizer or cache problem; the message names the path and the fix."""
