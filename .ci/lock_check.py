"""Exit non-zero unless the venv holds exactly the packages and versions of requirements.lock."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==(\S+)")
BOOTSTRAP = {"pip"}  # comes with the venv, not from the lock


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def pins(lines: list[str]) -> dict[str, str]:
    """Return {normalised name: version} of the ``name==version`` lines."""
    found = {}
    for line in lines:
        match = PIN.match(line)
        if match:
            found[_name(match.group(1))] = match.group(2)
    return found


def main() -> int:
    """Compare ``pip freeze`` of the running interpreter with the lock file given as argument."""
    lock = pins(Path(sys.argv[1]).read_text().splitlines())
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    installed = {k: v for k, v in pins(freeze).items() if k not in BOOTSTRAP}
    drift = sorted(
        f"{name}: locked {lock.get(name)}, installed {installed.get(name)}"
        for name in set(lock) | set(installed)
        if lock.get(name) != installed.get(name)
    )
    for line in drift:
        print(line, file=sys.stderr)
    print(f"lock check: {len(installed)} packages, {len(drift)} differ from {sys.argv[1]}")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
