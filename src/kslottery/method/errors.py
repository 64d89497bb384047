"""The one error type users see: a single line naming the problem and the fix."""


class KSLError(Exception):
    """Bad input or environment. The CLI prints ``error: <message>`` and exits with status 2."""

    def __init__(self, problem: str, fix: str):
        super().__init__(f"{problem}; {fix}")
        self.problem = problem
        self.fix = fix


class Interrupted(Exception):
    """SIGINT / SIGTERM arrived during work that checkpointed itself; the CLI exits 128 + signal number."""

    def __init__(self, signum: int, where: str):
        super().__init__(f"interrupted by signal {signum} {where}; rerun the same command to resume")
        self.signum = signum
