"""The ledger's hash chain (core/ledger.py) and review's data tables (profiles/review.yaml,
profiles/bandwidth.yaml): a chain continues across a resume and over an older, unchained ledger;
any edit, deletion, insertion or reordering breaks it; the tables load against their schemas."""

from __future__ import annotations

import json

import pytest

from orchestrator.core import datafiles
from orchestrator.core.ledger import Ledger, read_records, seal, verify_chain
from orchestrator.core.paths import REPO_ROOT
from orchestrator.publish.review.model import tolerances
from orchestrator.publish.review.physics import bandwidth_table


def write(path, *records, chained=True):
    with Ledger(path, chained=chained) as ledger:
        for record in records:
            ledger.write(record)


def test_each_line_links_to_the_one_before_and_a_resume_continues_the_chain(tmp_path):
    path = tmp_path / "run.jsonl"
    write(path, {"type": "meta", "n": 1}, {"type": "call", "n": 2})
    head = verify_chain(path.read_bytes()).head
    write(path, {"type": "resume", "n": 3}, {"type": "end", "n": 4})  # a later invocation opens it again
    check = verify_chain(path.read_bytes())
    assert check.intact and check.chained_lines == 4 and check.unchained_prefix == 0
    records = list(read_records(path))
    assert [list(r)[-1] for r in records] == ["chain"] * 4 and records[1]["chain"] == head
    assert records[-1]["chain"] == check.head  # the end line carries the head
    assert path.read_bytes() == seal(records)


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert", "swap"])
def test_any_change_to_the_lines_breaks_the_chain(tmp_path, tamper):
    path = tmp_path / "run.jsonl"
    write(path, *({"type": "call", "n": n} for n in range(5)))
    lines = path.read_bytes().splitlines(keepends=True)
    if tamper == "edit":
        lines[2] = lines[2].replace(b'"n": 2', b'"n": 9')
    elif tamper == "delete":
        del lines[2]
    elif tamper == "insert":
        lines.insert(2, lines[1])
    else:
        lines[1], lines[2] = lines[2], lines[1]
    assert verify_chain(b"".join(lines)).broken_at in (2, 3)


def test_a_line_without_its_link_after_the_chain_began_breaks_it(tmp_path):
    path = tmp_path / "run.jsonl"
    write(path, {"type": "meta"})
    write(path, {"type": "call"}, chained=False)
    assert verify_chain(path.read_bytes()).broken_at == 2


def test_an_older_unchained_ledger_resumed_is_chained_from_its_bytes(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps({"type": "meta"}) + "\n" + json.dumps({"type": "call"}) + "\n")
    assert verify_chain(path.read_bytes()).chained_lines == 0
    write(path, {"type": "resume"}, {"type": "end"})
    check = verify_chain(path.read_bytes())
    assert check.intact and check.unchained_prefix == 2 and check.chained_lines == 2
    edited = path.read_bytes().replace(b'{"type": "call"}', b'{"type": "call", "x": 1}')
    assert verify_chain(edited).broken_at == 3  # the chain covers the older lines as a whole


def test_a_torn_last_line_is_left_out_as_readers_do(tmp_path):
    path = tmp_path / "run.jsonl"
    write(path, {"type": "meta"}, {"type": "call"})
    assert verify_chain(path.read_bytes() + b'{"type": "ca').intact


def test_the_tables_load_and_name_every_gpu_of_the_hardware_fixtures():
    datafiles.load(REPO_ROOT / "profiles" / "review.yaml", "review")
    datafiles.load(REPO_ROOT / "profiles" / "bandwidth.yaml", "bandwidth")
    assert tolerances().roofline_reject_fraction >= 1
    table = bandwidth_table()
    for path in sorted((REPO_ROOT / "tests" / "fixtures" / "hardware").glob("*.json")):
        document = json.loads(path.read_text())
        if "cpu" not in document:
            continue  # a plan fixture
        assert table.host(document["cpu"]["name"]), path.name
        for gpu in document["gpu"]:
            assert gpu["kind"] == "integrated" or table.gpu(gpu["name"]), f"{path.name}: {gpu['name']}"


@pytest.mark.parametrize("name, gbps", [("NVIDIA GeForce RTX 4090", 1008), ("NVIDIA GeForce RTX 4070 Ti SUPER", 672),
                                        ("NVIDIA GeForce RTX 4070 Laptop GPU", 256), ("NVIDIA H100 80GB HBM3", 3350),
                                        ("NVIDIA H100 PCIe", 2000), ("NVIDIA A100-SXM4-80GB", 2039),
                                        ("Tesla T4", 320), ("NVIDIA L4", 300), ("NVIDIA L40S", 864)])
def test_the_more_specific_gpu_names_match_first(name, gbps):
    assert bandwidth_table().gpu(name) == gbps


@pytest.mark.parametrize("cpu, gbps", [("Apple M1", 68.25), ("Apple M1 Pro", 200), ("Apple M3 Max", 410),
                                       ("Apple M4 Pro", 273), ("AMD EPYC 7763 64-Core Processor", 620),
                                       ("Intel Core i3-8100", 256)])
def test_host_bounds_by_cpu_class(cpu, gbps):
    assert bandwidth_table().host(cpu) == gbps
