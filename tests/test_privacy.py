"""privacy-scan: planted secrets of every kind (tests/fakes/secrets.py) in every file type (PNG metadata
included) are found and redacted whole, JSON stays valid, other bytes survive, a clean run has no findings."""

import json
import shutil
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from orchestrator.cli import main
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.ledger import Ledger
from orchestrator.publish.privacy import UNSCANNABLE, PngChunk, default_rules, png_chunks, redact, scan, strip_url_credentials
from orchestrator.publish.submit import check_complete
from tests.fakes.secrets import CORES, EXAMPLE, HOST, KINDS, PEM, PLANTED, USER, found, plant

RULES = default_rules(hostname=HOST, username=USER)


@pytest.fixture
def run_dir(tmp_path):
    target = tmp_path / "run"
    shutil.copytree(EXAMPLE, target)
    return target


def test_every_planted_kind_is_found_in_every_file_and_redacted_whole(run_dir):
    assert len(KINDS) >= 25
    plant(run_dir)
    files = sorted(p.name for p in run_dir.iterdir())
    findings = scan(run_dir, RULES)
    for name in files:
        if not name.endswith(".png") or name == "ttft.png":  # the plots without planted chunks
            texts = [f.text for f in findings if f.file == name]
            assert [variant for variant in PLANTED if not found(variant, texts)] == [], name
    assert not any(f.kind == UNSCANNABLE for f in findings)

    assert redact(run_dir, RULES) == []
    for name in files:
        data = (run_dir / name).read_bytes()
        if name.endswith(".png"):
            image = Image.open(run_dir / name)
            image.load()
            data = json.dumps(image.text).encode()  # the decoded chunks (zTXt and iTXt are compressed)
            assert png_chunks((run_dir / name).read_bytes()) is not None
        elif name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".jsonl"):
            [json.loads(line) for line in data.rstrip(b"\n").split(b"\n")]
        text = data.decode()
        left = [variant for variant, core in CORES.items() if core in text or json.dumps(core)[1:-1] in text]
        assert not left, f"{name} still holds {left}"
        assert "BEGIN RSA" not in text and "END RSA" not in text
    assert "[REDACTED:private_key]" in (run_dir / "run.md").read_text()
    assert Image.open(run_dir / "ttft.png").text["Description"].count("[REDACTED:") >= len(PLANTED)


def test_a_pem_key_is_redacted_whole_in_text_and_json(tmp_path):
    (tmp_path / "notes.md").write_text(f"before\n{PEM}\nafter\n")
    (tmp_path / "doc.json").write_text(json.dumps({"key": PEM, "next": "kept"}))
    findings = scan(tmp_path, RULES)
    assert [str(f) for f in findings] == ["doc.json:1: private_key", "notes.md:2: private_key"]
    assert redact(tmp_path, RULES) == []
    assert (tmp_path / "notes.md").read_text() == "before\n[REDACTED:private_key]\nafter\n"
    assert json.loads((tmp_path / "doc.json").read_text()) == {"key": "[REDACTED:private_key]", "next": "kept"}


def test_a_clean_run_and_lookalikes_give_no_findings(run_dir):
    started = time.perf_counter()
    assert scan(EXAMPLE, RULES) == []
    assert time.perf_counter() - started < 10  # generous: the figure itself comes from the report
    (run_dir / "lookalikes.md").write_text("\n".join([
        "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "digest " + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "run-3fa85f64-5717-4562-b3fc-2c963f66afa6", "SmolLM2-135M-Instruct-Q4_K_M.gguf", "qwen2.5:0.5b",
        "llama.cpp b4567 version 1.2.3.4 and 0.17.0", "http://127.0.0.1:8080/v1/chat/completions", "[::1]:11434",
        "8.8.8.8 is public", "deadbeef:cafe", "2026-01-01T00:00:00.00Z", "tokens_per_sec 40.0", "user root on ci",
        "/usr/share/ollama/.ollama and /opt/models", "the password field is empty", "mac-m1-8gb", "x86_64 AVX2 FMA",
    ]) + "\n")
    assert scan(run_dir, RULES) == []


@pytest.mark.parametrize("separator", ["\n", "\t", "\r\n", "/", "\u2028", '"', "\\"])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_every_kind_is_found_right_after_a_json_escape(separator, ascii_only, tmp_path):
    for name, (kind, secret) in PLANTED.items():
        (tmp_path / "doc.json").write_text(json.dumps({"t": "x" + separator + secret + separator + "y"},
                                                      ensure_ascii=ascii_only))
        assert found(name, [f.text for f in scan(tmp_path, RULES)]), name
        assert redact(tmp_path, RULES) == [], name
        json.loads((tmp_path / "doc.json").read_text())


def test_non_utf8_bytes_survive_except_the_matched_span(tmp_path):
    head, tail = b"caf\xe9 \xff\xfe latin-1 and ", b" end \x80\x81\n"
    secret = PLANTED["github"][1].encode()
    (tmp_path / "notes.txt").write_bytes(head + secret + tail)
    assert [str(f) for f in scan(tmp_path, RULES)] == ["notes.txt:1: github_pat"]
    assert redact(tmp_path, RULES) == []
    assert (tmp_path / "notes.txt").read_bytes() == head + b"[REDACTED:github_pat]" + tail


def test_what_cannot_be_scanned_is_a_finding_and_submit_refuses_it(run_dir):
    (run_dir / "blob.bin").write_bytes(b"\x00\x01binary\x00")
    (run_dir / "notes.txt").symlink_to("/etc/hostname")
    data = (run_dir / "ttft.png").read_bytes()
    exif = PngChunk(b"eXIf", b"MM\x00*any text at all").encode()  # may hold text we do not parse
    (run_dir / "exif.png").write_bytes(data[:-12] + exif + data[-12:])
    (run_dir / "torn.png").write_bytes(data[:-12] + exif[:-1] + data[-12:])  # its CRC is cut short
    findings = {str(f) for f in scan(run_dir, RULES)}
    assert findings == {"blob.bin:0: unscannable", "notes.txt:0: unscannable", "torn.png:0: unscannable",
                        f"exif.png:{len(png_chunks(data))}: unscannable"}
    assert len(redact(run_dir, RULES)) == 4  # nothing to redact them with: they remain, and are said to
    with pytest.raises(WeeyugaError, match="a symbolic link in a run folder"):
        check_complete(run_dir)  # the folder check refuses a link before the scan is consulted
    (run_dir / "notes.txt").unlink()
    with pytest.raises(WeeyugaError, match="privacy scan found 3"):
        check_complete(run_dir)


def test_privacy_scan_redact_prints_what_really_remains(run_dir, capsys, monkeypatch):
    monkeypatch.setattr("orchestrator.publish.privacy.rules.socket.gethostname", lambda: HOST)
    monkeypatch.setattr("orchestrator.publish.privacy.rules.getpass.getuser", lambda: USER)
    (run_dir / "notes.md").write_text("mail alice.w@wonderland-mail.org from 10.1.2.3\n")
    (run_dir / "blob.bin").write_bytes(b"\x00")
    assert main(["privacy-scan", str(run_dir), "--redact"]) == 1
    out = capsys.readouterr().out
    assert "notes.md:1: email" in out and "1 remain" in out and out.rstrip().endswith("blob.bin:0: unscannable")
    (run_dir / "blob.bin").unlink()
    assert main(["privacy-scan", str(run_dir)]) == 0


def test_credentials_in_urls_are_never_recorded(tmp_path):
    secret = "s3" + "cret"
    assert strip_url_credentials(f"--target-url http://bob:{secret}@127.0.0.1:8080 x") == "--target-url http://127.0.0.1:8080 x"
    with Ledger(tmp_path / "run.jsonl") as ledger:
        ledger.write({"type": "meta", "command": ["weeyuga", "run", "--target-url", f"http://bob:{secret}@127.0.0.1:8080"],
                      "error": f'cannot connect to https://bob:{secret}@[::1]:11434: "refused"'})
    text = (tmp_path / "run.jsonl").read_text()
    assert secret not in text and "bob" not in text and "http://127.0.0.1:8080" in text
    json.loads(text)


# --- property test: privacy-scan --redact on random JSON with secrets in its strings --------------

SECRET_TEXTS = [text for _, text in PLANTED.values()]
# Secrets next to quotes, backslashes and line breaks too: JSON escapes around them must survive.
string_with_secret = st.builds(lambda a, sep, s, b: f"{a}{sep}{s}{sep}{b}", st.text(max_size=12),
                               st.sampled_from([" ", "", "\n", "\t", '"', "\\", "/", "\u2028", "é"]),
                               st.sampled_from(SECRET_TEXTS), st.text(max_size=12))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | string_with_secret,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | string_with_secret, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values, ascii_only=st.booleans(), indent=st.sampled_from([None, 2]), jsonl=st.booleans())
def test_redacting_random_json_keeps_it_valid_and_leaves_nothing(tmp_path_factory, document, ascii_only, indent, jsonl):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / ("doc.jsonl" if jsonl else "doc.json")
    text = json.dumps(document, ensure_ascii=ascii_only, indent=None if jsonl else indent)
    path.write_text(text + "\n" + (json.dumps({"second": document}, ensure_ascii=ascii_only) + "\n" if jsonl else ""),
                    encoding="utf-8")
    remaining = redact(folder, RULES)
    assert remaining == []
    after = path.read_text(encoding="utf-8")
    for line in after.rstrip("\n").split("\n") if jsonl else [after]:
        json.loads(line)


def test_addresses_at_documentation_domains_are_nobodys(tmp_path):
    """RFC 2606/6761 domains (the quality packs' example addresses, which models echo) are not findings;
    a look-alike that only starts with one is."""
    from orchestrator.publish.privacy.rules import OUR_RULES

    email = next(rule for rule in OUR_RULES if rule.kind == "email")
    for text in ("priya.nair@example.com", "bob@example.net", "a@host.test", "x@mail.example", "y@z.invalid"):
        assert not list(email.spans(text)), text
    for text in ("bob@example.com.evil.org", "a@test.com", "x@example.community", "me@mailbox.org"):
        assert list(email.spans(text)), text
