"""Runs inside the throwaway venv of bench_quality_parity.py (if-verifiable installed --no-deps, with
langdetect, nltk and immutabledict): IFEval's own instruction checkers on the responses weeyuga's
`instruct` checks judged.

Usage: python ifeval_reference_worker.py CASES.jsonl OUT.jsonl
CASES lines: {"n", "instruction", "kwargs", "response"}; OUT lines: {"n", "valid"} (valid is null
with "error" when the checker raised). langdetect is seeded (0) so language verdicts repeat.
"""

import json
import sys

import inert_imports  # the worker runs as a script: its folder is on sys.path

inert_imports.install(["datasets"])  # if_verifiable's package face imports it; checking never uses it

import langdetect  # noqa: E402
from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT  # noqa: E402

langdetect.DetectorFactory.seed = 0


def main(cases_path, out_path):
    with open(cases_path) as cases, open(out_path, "w") as out:
        for line in cases:
            case = json.loads(line)
            checker = INSTRUCTION_DICT[case["instruction"]](case["instruction"])
            try:
                checker.build_description(**case["kwargs"])
                verdict = {"valid": bool(checker.check_following(case["response"]))}
            except Exception as exc:  # reported, not a verdict
                verdict = {"valid": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
            out.write(json.dumps({"n": case["n"], **verdict}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
