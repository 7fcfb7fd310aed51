"""Errors raised while obtaining or parsing upstream data."""


class SourceError(Exception):
    """Upstream data could not be obtained or is not what it claims to be.

    The message names the source, the file (URL or path) and the problem.
    """

    def __init__(self, source: str, location: str, problem: str):
        self.source = source
        self.location = location
        self.problem = problem
        super().__init__(f"{source}: {location}: {problem}")


class SourceMissing(SourceError):
    """The file does not exist upstream (or in the mirror)."""
