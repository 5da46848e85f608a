"""Errors the user caused or can fix: the CLI prints them without a traceback."""


class MapperError(Exception):
    """A problem with the job, its options or the data, stated for the user.

    ``detail``: lines of our own that go after the message (an ``index.yaml`` block): the CLI
    prints them as lines, while line breaks in the message (from the data) are escaped. It is
    the second of ``args``, so it survives pickling and a runner's re-raise (Beam's
    ``type(e)(e.args[0] + " [while running ...]", *e.args[1:])``)."""

    def __init__(self, message: str = "", detail: str = ""):
        super().__init__(*((message, detail) if detail else (message,)))

    @property
    def detail(self) -> str:
        return self.args[1] if len(self.args) > 1 and self.args[1] else ""

    def __str__(self) -> str:
        text = str(self.args[0]) if self.args else ""
        return f"{text}\n{self.detail}" if self.detail else text


class UsageError(MapperError):
    """A bad option value or job parameter."""


class QueryError(MapperError):
    """A query the mapper cannot run as given."""


class JobFailed(MapperError):
    """The job's own code raised while processing an entity or building its query."""
