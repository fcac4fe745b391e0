"""The runtime registry: one name per runtime, the CLI's choices from it, and what each runtime
does to a cell it did not launch (health, facts, how a call is made cold)."""

from orchestrator.cli import build_parser
from orchestrator.flows.pipeline import byo_targets
from orchestrator.runtime import RUNTIMES, detect_engine, engine_names, managed_names, runtime_for_engine
from tests.fakes import ollama as fake_ollama
from tests.fakes.openai_server import start_in_thread


def test_registry_names_each_runtime_once_and_feeds_the_cli_choices():
    assert list(RUNTIMES) == ["llama.cpp", "ollama", "openai"] and managed_names() == ["llama.cpp", "ollama"]
    assert engine_names() == ["llamacpp", "ollama", "openai"]
    assert all(runtime_for_engine(r.engine) is r for r in RUNTIMES.values())
    parser = build_parser()
    assert parser.parse_args(["runtime", "install", "ollama"]).name == "ollama"
    assert parser.parse_args(["run", "--target-url", "http://127.0.0.1:1", "--models", "m", "--engine", "openai"]).engine == "openai"


def test_a_server_someone_started_is_recognised_and_made_cold_only_where_it_can_be():
    srv, state, url = fake_ollama.start_in_thread()
    openai_srv, _, openai_url = start_in_thread()
    try:
        assert detect_engine(url) == "ollama" and detect_engine(openai_url) == "llamacpp"
        assert detect_engine("http://127.0.0.1:9") == "openai"
        (ollama_target,) = byo_targets(url, ["smollm2:135m"], None, None, "box")
        (other,) = byo_targets(openai_url, ["fake"], "openai", None, "box")
        assert (ollama_target.cell.cell_id, ollama_target.cell.api, ollama_target.cold_kind) == \
            ("box:ollama:smollm2:135m", "ollama", "unload")
        assert (other.cell.api, other.cold_kind, other.cold_load_state) == ("openai", "process_warm", "process_warm")
        ollama = runtime_for_engine("ollama")
        assert ollama.health(ollama_target.cell) is None
        assert ollama.facts(ollama_target.cell) == {"engine_version": fake_ollama.FAKE_VERSION, "model_digest": fake_ollama.DIGEST}
        assert runtime_for_engine("openai").health(other.cell) is None
        state.loaded.add("smollm2:135m")
        ollama_target.unload()
        assert "smollm2:135m" not in state.loaded
    finally:
        srv.shutdown()
        openai_srv.shutdown()
