"""Fake secrets of every kind privacy-scan must find, planted in every file type of a run folder (PNG
text chunks included); shared by tests/test_privacy.py and benchmarks/bench_privacy.py.

Every secret here is fake, and is assembled at run time so that the repository itself does not
trip secret scanners.
"""

import base64
import json
import random
import string
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from orchestrator.core.paths import REPO_ROOT

EXAMPLE = next((REPO_ROOT / "submissions" / "EXAMPLE").glob("*/run-*"))

HOST, USER = "zebrabox", "alicew"
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
    "npm_bare": ("npm_access_token", "np" + "m_" + fake(36)),
    "discord": ("discord_bot_token", "M" + fake(23) + "." + fake(6) + "." + fake(27)),
    "telegram": ("telegram_bot_token", fake(9, "123456789") + ":" + fake(35)),
    "mailchimp": ("mailchimp_access_key", fake(32, HEX) + "-us" + "12"),
    "square": ("square_oauth_secret", "sq0" + "csp-" + fake(43)),
    "azure": ("azure_storage_account_access_key", "Account" + "Key=" + fake(86, ALNUM + "+/") + "=="),
    "azure_connection": ("generic_api_key", "DefaultEndpointsProtocol=https;AccountName=benchstore;Account" + "Key="
                         + fake(86, ALNUM + "+/") + "==;EndpointSuffix=core.windows.net"),
    "basic_header": ("basic_auth_header", "Authorization: Bas" + "ic " + base64.b64encode(("deploy:" + fake(12)).encode()).decode()),
    "openai": ("openai_token", "sk" + "-" + fake(20) + "T3Blbk" + "FJ" + fake(20)),
    "anthropic": ("api_key", "sk" + "-ant-api03-" + fake(40)),
    "huggingface": ("huggingface_token", "h" + "f_" + fake(34)),
    # kinds no rule of ours names: Betterleaks' own
    "shopify": ("shopify_access_token", "sh" + "pat_" + fake(32, HEX)),
    "digitalocean": ("digitalocean_pat", "do" + "p_v1_" + fake(64, HEX)),
    "databricks": ("databricks_api_token", "da" + "pi" + fake(32, HEX)),
    "age": ("age_secret_key", "AGE-SECRET" + "-KEY-1" + fake(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")),
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
CORES.update(azure_connection=PLANTED["azure_connection"][1].split("Key=")[1].split(";")[0],
             basic_header=PLANTED["basic_header"][1].rsplit(" ", 1)[1])
CORES.update(pem=PEM_BODY[2], bearer=PLANTED["bearer"][1].rsplit(" ", 1)[1], url_credentials=PLANTED["url_credentials"][1].split(":")[2].split("@")[0],
             home_linux="/home/alice", home_json_escaped="carol", home_escaped_twice="dave", home_mac="/Users/bob", home_windows="Users\\bob",
             home_root="/root")


def planted_text():
    return " | ".join(text for _, text in PLANTED.values())


def json_escaping_slashes(text):
    """As JSON writers that escape "/" do (PHP, some JavaScript)."""
    return text.replace("/home/carol/", "\\/home\\/carol\\/")


def plant(run_dir: Path) -> None:
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


def found(variant: str, texts) -> bool:
    """Whether one of the findings' texts covers the variant's distinctive part (as written, or JSON-escaped)."""
    core = CORES[variant]
    return any(core in text or json.dumps(core)[1:-1] in text or (len(text) >= 12 and text in core) for text in texts)
