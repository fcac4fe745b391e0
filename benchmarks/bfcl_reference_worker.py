"""Runs inside the throwaway venv of bench_quality_parity.py (bfcl-eval installed --no-deps): BFCL's
own evaluation functions on the responses weeyuga judged, and BFCL's own request compilation.

Usage: python bfcl_reference_worker.py CASES.jsonl OUT.jsonl MODEL [DATA_DIR]
(DATA_DIR: BFCL-format files to judge against instead of the package's own, e.g. the test fixtures)
CASES lines: {"n", "category", "id", "message"} or {"n", "category", "id", "tools_of": true}.
Only the checker and its import chain are needed; the provider SDKs that chain imports (and the
other heavy requirements) are replaced by inert stand-ins, so nothing else is installed.
"""

import json
import sys

import inert_imports  # the worker runs as a script: its folder is on sys.path

# What BFCL's import chain names for its model handlers; its checker calls none of them.
inert_imports.install(["anthropic", "boto3", "cohere", "datamodel_code_generator", "google", "httpx", "mistralai", "numpy",
                       "openai", "pandas", "qwen_agent", "requests", "tree_sitter", "tree_sitter_java",
                       "tree_sitter_javascript", "writerai"])

from bfcl_eval.constants.enums import Language, ModelStyle, ReturnFormat  # noqa: E402
from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI  # noqa: E402
from bfcl_eval.eval_checker import eval_runner  # noqa: E402
from bfcl_eval.model_handler.utils import convert_to_tool  # noqa: E402
from bfcl_eval.utils import is_java, is_js, is_relevance_or_irrelevance, load_dataset_entry, load_ground_truth_entry  # noqa: E402


def _lines(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(cases_path, out_path, model, data_dir=None):
    handler = eval_runner.get_handler(model)
    prompts, hinted, answers = {}, {}, {}
    with open(cases_path) as cases, open(out_path, "w") as out:
        for line in cases:
            case = json.loads(line)
            category = case["category"]
            if category not in prompts and data_dir:
                prompts[category] = {e["id"]: e for e in _lines(f"{data_dir}/BFCL_v4_{category}.json")}
                answers[category] = ({} if is_relevance_or_irrelevance(category) else
                                     {e["id"]: e["ground_truth"] for e in _lines(f"{data_dir}/possible_answer/BFCL_v4_{category}.json")})
            elif category not in prompts:
                prompts[category] = {e["id"]: e for e in load_dataset_entry(category, include_prereq=False,
                                                                             include_language_specific_hint=False)}
                hinted[category] = {e["id"]: e for e in load_dataset_entry(category, include_prereq=False)}
                answers[category] = ({} if is_relevance_or_irrelevance(category)
                                     else {e["id"]: e["ground_truth"] for e in load_ground_truth_entry(category)})
            if case.get("tools_of"):
                tools = convert_to_tool(hinted[category][case["id"]]["function"], GORILLA_TO_OPENAPI, ModelStyle.OPENAI_COMPLETIONS)
                out.write(json.dumps({"n": case["n"], "tools": tools, "messages": hinted[category][case["id"]]["question"][0]}) + "\n")
                continue
            out.write(json.dumps({"n": case["n"], **judge(handler, model, category, prompts[category][case["id"]],
                                                          answers[category].get(case["id"]), case["message"])}) + "\n")


def judge(handler, model, category, prompt, answer, message):
    """BFCL's verdict on one response, which the OpenAI handler would have parsed as below."""
    calls = message.get("tool_calls")
    result = [{c["function"]["name"]: c["function"]["arguments"]} for c in calls] if calls else message.get("content")
    try:
        if is_relevance_or_irrelevance(category):
            verdict = eval_runner._evaluate_single_relevance_entry(handler, prompt["id"], result, prompt, model, category)
        else:
            language, fmt = ((Language.JAVA, ReturnFormat.JAVA) if is_java(category) else
                             (Language.JAVASCRIPT, ReturnFormat.JAVASCRIPT) if is_js(category) else
                             (Language.PYTHON, ReturnFormat.PYTHON))
            verdict = eval_runner._evaluate_single_ast_entry(handler, prompt["id"], result, answer, prompt, model, category,
                                                             language=language, return_format=fmt, has_tool_call_tag=False)
    except Exception as exc:  # the checker itself failed on this response: reported, not a verdict
        return {"valid": None, "error_type": f"raised {type(exc).__name__}: {exc}"[:200]}
    return {"valid": verdict["valid"], "error_type": verdict.get("error_type")}


if __name__ == "__main__":
    main(*sys.argv[1:5])
