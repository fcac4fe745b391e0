"""privacy-scan: planted secrets of every kind in every file type (PNG metadata included) are found
and redacted whole, JSON stays valid, other bytes survive, a clean run has no findings.

Every secret here is fake, and is assembled at run time so that the repository itself does not
trip secret scanners.
"""

import base64
import json
import random
import shutil
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from orchestrator.cli import main
from orchestrator.core.errors import WeeyugaError
from orchestrator.core.ledger import Ledger
from orchestrator.core.paths import REPO_ROOT
from orchestrator.publish.privacy import UNSCANNABLE, PngChunk, default_rules, png_chunks, redact, scan, strip_url_credentials
from orchestrator.publish.submit import check_complete

EXAMPLE = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))
HOST, USER = "zebrabox", "alicew"
RULES = default_rules(hostname=HOST, username=USER)
RNG = random.Random(18)
ALNUM = string.ascii_letters + string.digits


def fake(n, alphabet=ALNUM):
    return "".join(RNG.choice(alphabet) for _ in range(n))


def b64url(document):
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


PEM_BODY = [fake(64, ALNUM + "+/") for _ in range(4)] + [fake(20) + "=="]
PEM_END = "-----END " + "RSA PRIVATE KEY-----"
PEM = "\n".join(["-----BEGIN " + "RSA PRIVATE KEY-----", *PEM_BODY, PEM_END])
HEX = "0123456789abcdef"

# variant -> (kind reported, the secret text)
PLANTED = {
    "aws": ("aws_access_key", "AK" + "IA" + fake(16, string.ascii_uppercase + string.digits)),
    "slack": ("slack_token", "xo" + "xb-" + fake(10, string.digits) + "-" + fake(13, string.digits) + "-" + fake(24)),
    "google": ("google_api_key", "AI" + "za" + fake(35, ALNUM + "_-")),
    "jwt": ("json_web_token", b64url({"alg": "HS256", "typ": "JWT"}) + "." + b64url({"sub": "4711", "name": "Ann"})
            + "." + fake(43, ALNUM + "_-")),
    "pem": ("private_key", PEM),
    "github": ("github_token", "gh" + "p_" + fake(36)),
    "gitlab": ("gitlab_token", "gl" + "pat-" + fake(20)),
    "stripe": ("stripe_access_key", "sk" + "_live_" + fake(24)),
    "sendgrid": ("sendgrid_api_key", "SG" + "." + fake(22) + "." + fake(43)),
    "twilio": ("twilio_api_key", "S" + "K" + fake(32, HEX)),
    "pypi": ("pypi_token", "pypi-" + "AgEIcHlwaS5vcmc" + fake(72)),
    "npm": ("npm_tokens", "//registry.npmjs.org/:_authToken=" + "npm_" + fake(36)),
    "discord": ("discord_bot_token", "M" + fake(23) + "." + fake(6) + "." + fake(27)),
    "telegram": ("telegram_bot_token", fake(9, "123456789") + ":" + fake(35)),
    "mailchimp": ("mailchimp_access_key", fake(32, HEX) + "-us" + "12"),
    "square": ("square_oauth_secret", "sq0" + "csp-" + fake(43)),
    "azure": ("azure_storage_account_access_key", "Account" + "Key=" + fake(86, ALNUM + "+/") + "=="),
    "openai": ("openai_token", "sk" + "-" + fake(20) + "T3Blbk" + "FJ" + fake(20)),
    "anthropic": ("api_key", "sk" + "-ant-api03-" + fake(40)),
    "huggingface": ("huggingface_token", "h" + "f_" + fake(34)),
    "bearer": ("bearer_token", "Authorization: Bear" + "er " + fake(30)),
    "ssh_public": ("ssh_public_key", "ssh-ed25519 " + "AAAAC3NzaC1lZDI1NTE5AAAA" + fake(43)),
    "password": ("password", "pass" + "word=" + fake(12)),
    "url_credentials": ("url_credentials", "https://deploy:" + fake(14) + "@git.internal.example.com/repo.git"),
    "home_linux": ("home_path", "/home/alice/.cache/models/x.gguf"),
    "home_json_escaped": ("home_path", "/home/carol/.config"),  # written as \/home\/carol\/ into JSON files
    "home_escaped_twice": ("home_path", "\\/home\\/dave\\/.cache"),
    "home_mac": ("home_path", "/Users/bob/Library/x"),
    "home_windows": ("home_path", "C:\\Users\\bob\\AppData\\x"),
    "home_root": ("home_path", "/root/.ollama/models"),
    "ipv4_192": ("private_ip", "192.168.1.20"),
    "ipv4_10": ("private_ip", "10.1.2.3"),
    "ipv4_172": ("private_ip", "172.20.0.5"),
    "ipv4_link_local": ("private_ip", "169.254.10.20"),
    "ipv6_ula": ("private_ipv6", "fd12:3456:789a::1"),
    "ipv6_link_local": ("private_ipv6", "fe80::1ff:fe23:4567:890a"),
    "email": ("email", "alice.w" + "@" + "wonderland-mail.org"),
    "host": ("host_name", HOST),
    "user": ("user_name", USER),
}
KINDS = {kind for kind, _ in PLANTED.values()}
# What must be gone after redaction: the distinctive part of each secret.
CORES = {name: text.split("=", 1)[-1] if name in ("npm", "password", "azure") else text
         for name, (_, text) in PLANTED.items()}
CORES.update(pem=PEM_BODY[2], bearer=PLANTED["bearer"][1].rsplit(" ", 1)[1], url_credentials=PLANTED["url_credentials"][1].split(":")[2].split("@")[0],
             home_linux="/home/alice", home_json_escaped="carol", home_escaped_twice="dave", home_mac="/Users/bob", home_windows="Users\\bob",
             home_root="/root")


def planted_text():
    return " | ".join(text for _, text in PLANTED.values())


def json_escaping_slashes(text):
    """As JSON writers that escape "/" do (PHP, some JavaScript)."""
    return text.replace("/home/carol/", "\\/home\\/carol\\/")


def plant(run_dir):
    """Every variant in every file of a run folder, PNG text chunks included."""
    secrets = planted_text()
    for name in ("manifest.json", "metadata.json", "hardware.json", "context.json"):
        document = json.loads((run_dir / name).read_text())
        document["notes"] = secrets
        (run_dir / name).write_text(json_escaping_slashes(json.dumps(document, indent=2)))
    for name in ("run.jsonl", "responses.jsonl"):
        lines = (run_dir / name).read_text().splitlines()
        record = json.loads(lines[-1])
        record["text" if name == "responses.jsonl" else "error"] = secrets
        lines[-1] = json_escaping_slashes(json.dumps(record, ensure_ascii=False))
        (run_dir / name).write_text("\n".join(lines) + "\n")
    with open(run_dir / "run.md", "a") as fh:
        fh.write("\n".join(text for _, text in PLANTED.values()) + "\n")
    info = PngInfo()
    info.add_text("Comment", secrets)
    info.add_text("Source", secrets, zip=True)
    info.add_itxt("Description", secrets, lang="en", tkey="Beschreibung", zip=True)
    info.add_itxt("Author", secrets)
    Image.open(EXAMPLE / "ttft.png").save(run_dir / "ttft.png", pnginfo=info)


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
            assert {f.kind for f in findings if f.file == name} == KINDS, name
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
        assert kind in {f.kind for f in scan(tmp_path, RULES)}, name
        assert redact(tmp_path, RULES) == [], name
        json.loads((tmp_path / "doc.json").read_text())


def test_non_utf8_bytes_survive_except_the_matched_span(tmp_path):
    head, tail = b"caf\xe9 \xff\xfe latin-1 and ", b" end \x80\x81\n"
    secret = PLANTED["github"][1].encode()
    (tmp_path / "notes.txt").write_bytes(head + secret + tail)
    assert [str(f) for f in scan(tmp_path, RULES)] == ["notes.txt:1: github_token"]
    assert redact(tmp_path, RULES) == []
    assert (tmp_path / "notes.txt").read_bytes() == head + b"[REDACTED:github_token]" + tail


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
