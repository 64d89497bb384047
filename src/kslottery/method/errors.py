"""The one error type users see: a single line naming the problem and the fix."""

import errno
import shutil


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


def no_space(error: BaseException, where=None) -> bool:
    """Whether a failed write was the disk filling up. Python says so by errno; safetensors (Rust) says so
    only in its message; torch.save says "file write failed" without a reason, so there the free space of
    ``where`` decides."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if "No space left on device" in str(error):
        return True
    try:
        return where is not None and shutil.disk_usage(where).free < 16 * 2**20
    except OSError:
        return False


def disk_full(where) -> KSLError:
    return KSLError(f"no space left on the disk of {where}",
                    "free space and rerun the same command (an interrupted tune resumes from its last checkpoint), "
                    "or pass --runs-dir on another disk")
