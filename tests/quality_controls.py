"""Goldens and junk answers for the quality packs, shared by the quality tests.

The goldens live in tests/fixtures/quality/goldens.json (generated scenarios: beside them in their
generator), never in a pack, so a model is never shown them. A golden is `{"content": …}` or `{"tool_calls": [{"name", "arguments": {…}}]}`.
"""

import json

from orchestrator.core.paths import REPO_ROOT
from orchestrator.evaluate.quality.packs import GENERATORS, PACK_ORDER, load_packs

GOLDENS_PATH = REPO_ROOT / "tests" / "fixtures" / "quality" / "goldens.json"
JUNK_TEXTS = ("", "(no answer)", "{}")


def goldens() -> dict:
    """pack -> scenario -> golden: the written scenarios' from the fixture, the generated ones' from their generator."""
    out = json.loads(GOLDENS_PATH.read_text(encoding="utf-8"))
    for pack in load_packs(PACK_ORDER):
        if pack.generated:
            made = GENERATORS[pack.id].generate(pack.generated["seed"], pack.generated["sets"]["full"])
            out[pack.id].update({g.scenario["id"]: g.golden for g in made})
    return out


def message(golden: dict) -> dict:
    """An assistant message as the client returns it (arguments as a JSON string)."""
    calls = [{"function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}} for c in golden.get("tool_calls", [])]
    return {"content": golden.get("content"), "reasoning_content": None, "tool_calls": calls}


def junk_messages(scenario) -> dict[str, dict]:
    """Every junk answer a server could give this scenario, by name."""
    prompt = scenario.messages[-1]["content"]
    everything = "\n".join(m["content"] for m in scenario.messages)
    junk = {f"text {text!r}": {"content": text, "tool_calls": []} for text in JUNK_TEXTS}
    junk["prompt echoed"] = {"content": prompt, "tool_calls": []}
    junk["all messages echoed"] = {"content": everything, "tool_calls": []}
    junk["prompt in reasoning only"] = {"content": "", "reasoning_content": everything, "tool_calls": []}
    for tool in scenario.tools or ({"function": {"name": "get_weather"}},):
        name = tool["function"]["name"]
        junk[f"{name} with empty arguments"] = {"content": None, "tool_calls": [{"function": {"name": name, "arguments": "{}"}}]}
    return junk
