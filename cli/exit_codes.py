"""The CLI's one error path: exit codes and the exceptions that map to them."""
import contextlib
from typing import Iterator, Tuple, Type

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # the reader of stdout closed it: a shell's status for a process SIGPIPE ends (128 + 13)


class UserError(Exception):
    """Bad input (an argument, a file, a column): one line on stderr, exit 2, nothing written."""


class Refused(Exception):
    """The system declined to act (a gate, a busy lock, an unreachable server): one line, exit 1."""


@contextlib.contextmanager
def translated(user: Tuple[Type[BaseException], ...] = (),
               refused: Tuple[Type[BaseException], ...] = ()) -> Iterator[None]:
    """Library exceptions of the given kinds become the CLI's one-line errors."""
    try:
        yield
    except user as e:
        raise UserError(str(e)) from None
    except refused as e:
        raise Refused(str(e)) from None
