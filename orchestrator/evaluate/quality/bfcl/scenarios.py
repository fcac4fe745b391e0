"""BFCL categories as pack parts: each question one scenario, with BFCL's request and answers.

Returns plain data (the pack's meta, one dict of Scenario fields per question) that
quality/packs.py turns into a Pack, so this package never imports the pack loader.
"""

from __future__ import annotations

import hashlib
from typing import Any

from orchestrator.core.errors import BadInput
from orchestrator.evaluate.quality.bfcl.request import openai_tools, question_messages
from orchestrator.evaluate.quality.bfcl.source import Category, Source, file_sha256, read_entries

# Bumped when how a question becomes a scenario (request or verifier spec) changes.
CONVERSION_VERSION = 1


def pack_parts(source: Source, category: Category, sample: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(meta, scenarios) of one category's pack; `sample` keeps that many questions spread evenly
    over the file (quality mode medium), in file order."""
    questions = read_entries(source, source.question_file(category))
    answer_file = source.answer_file(category)
    answers = {entry["id"]: entry["ground_truth"] for entry in read_entries(source, answer_file)} if answer_file else {}
    if sample is not None and sample < len(questions):
        questions = [questions[round(i * len(questions) / sample)] for i in range(sample)]
    scenarios = []
    for entry in questions:
        if answer_file and entry["id"] not in answers:
            raise BadInput(f"{answer_file}: no possible answer for {entry['id']}")
        messages = question_messages(entry)
        asked = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        scenarios.append({
            "id": entry["id"], "description": f"BFCL {category.category}: {' '.join(asked.split())[:120]}", "level": "medium",
            "messages": tuple(messages), "tools": tuple(openai_tools(entry["function"], category.language)) or None,
            "verifier": {"type": "bfcl", "check": category.check, "language": category.language,
                         "functions": entry["function"], "answers": answers.get(entry["id"])}})
    digests = "".join(file_sha256(source, name) for name in (source.question_file(category), answer_file) if name)
    meta = {"version": CONVERSION_VERSION, "title": category.title, "licence": source.licence,
            "sha256": hashlib.sha256(f"{source.version}:{digests}".encode()).hexdigest(), **source.pack}
    return meta, scenarios
