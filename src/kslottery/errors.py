"""The one error type users see: a single line naming the problem and the fix."""


class KSLError(Exception):
    """Bad input or environment. The CLI prints ``error: <message>`` and exits with status 2."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix
