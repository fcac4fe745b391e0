from slug import slugify


def test_words_and_punctuation():
    assert slugify("Hello, World!") == "hello-world"


def test_runs_collapse_and_edges_trim():
    assert slugify("  Rust & Go  2024 ") == "rust-go-2024"


def test_non_ascii_is_a_separator():
    assert slugify("Caf\u00e9 au lait") == "caf-au-lait"


def test_nothing_left():
    assert slugify("!!! ???") == ""
    assert slugify("") == ""


def test_already_a_slug():
    assert slugify("a-b-c") == "a-b-c"
