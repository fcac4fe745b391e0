"""A FAKE `llama-fit-params`: an executable script that prints the fitted arguments the real
tool prints on stdout (`-c <ctx> -ngl <n>`), or fails. Not a pass for the real tool."""

from __future__ import annotations

import stat
import sys
from pathlib import Path


def write_fake_fit_params(path: Path, ngl: int, exit_code: int = 0) -> Path:
    path.write_text(f"#!{sys.executable}\n"
                    "import sys\n"
                    "args = sys.argv[1:]\n"
                    "ctx = args[args.index('-c') + 1]\n"
                    f"print('-c', ctx, '-ngl', {ngl})\n"
                    f"sys.exit({exit_code})\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
