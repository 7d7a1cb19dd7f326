"""Build the students' archive of the course: the repository without the instructor's material.

Usage (``make handout`` runs it)::

    python docs/course/build_handout.py dist/wpsim-course-handout.tar.gz

The archive holds every file of this repository that git tracks or would track (not ignored),
so that wpsim installs and every command of the handouts runs, as it is in the working tree, under one folder ``wpsim-course/``,
except :data:`EXCLUDED`: the instructor folder (reference solutions, a second solution per
assignment, the hidden cases of the graders) and the course's own tests, which embed right and
wrong answers. The graders in the archive run their public cases only (a preview); the course
grades with ``--instructor docs/course/instructor``. The archive is reproducible: sorted names,
no owners, one fixed date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "wpsim-course"
#: Paths (files, or folders ending in /) never shipped to students.
EXCLUDED = ("docs/course/instructor/", "tests/test_course.py")
MTIME = 1_700_000_000  # fixed, so that the same files give the same archive


class HandoutError(Exception):
    """The archive cannot be built (one line: what and why)."""


def shipped(path: str) -> bool:
    """Whether the repository file ``path`` (relative, with /) goes into the archive.

    Examples
    --------
    >>> shipped("docs/course/a2/grade.py"), shipped("docs/course/instructor/a2_hidden.yaml")
    (True, False)
    >>> shipped("tests/test_course.py"), shipped("tests/test_docs.py")
    (False, True)
    """
    return not any(path == e or (e.endswith("/") and path.startswith(e)) for e in EXCLUDED)


def repository_files(root: Path = ROOT) -> list[str]:
    """The files of ``root`` that git tracks or would track (not ignored), sorted."""
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        raise HandoutError(
            f"{root}: not a git checkout ({type(error).__name__}): the archive "
            "ships the files git tracks"
        ) from None
    names = [n for n in proc.stdout.decode().split("\0") if n]
    return sorted(n for n in names if (root / n).is_file())


def build(out: str | Path, root: Path = ROOT) -> list[str]:
    """Write the archive to ``out``; return the archived paths (relative to the repository)."""
    from wpsim.outputs import open_output

    names = [n for n in repository_files(root) if shipped(n)]

    def owned_by_nobody(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = MTIME
        return info

    with open_output(out, "handout", "wb") as handle:
        with tarfile.open(fileobj=handle, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
            for name in names:
                archive.add(
                    root / name, f"{PREFIX}/{name}", recursive=False, filter=owned_by_nobody
                )
    return names


def main(argv: list[str] | None = None) -> int:
    """Command line: build the archive; exit status 2 with one line if it cannot."""
    from wpsim.errors import WpsimError

    parser = argparse.ArgumentParser(description="Build the students' archive of the course.")
    parser.add_argument("out", help="archive to write (.tar.gz)")
    args = parser.parse_args(argv)
    try:
        names = build(args.out)
    except (HandoutError, WpsimError) as error:
        print(f"handout: {error}", file=sys.stderr)
        return 2
    print(
        f"handout: wrote {args.out}: {len(names)} files under {PREFIX}/, without "
        f"{', '.join(EXCLUDED)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
