"""Quality packs: verifier-backed scenarios that say whether a model behaves (issue 14).

A pure library: packs (suites/packs/*.jsonl) and their loader (`packs`), one deterministic
verifier per kind (`verifiers/`), the code sandbox (`sandbox`), the entry functions that run
scenarios through an injected chat function (`runner`), records and rescoring (`records`)
and the pure scoring and reporting helpers (`scoring`). Nothing here talks to a runtime.
"""
