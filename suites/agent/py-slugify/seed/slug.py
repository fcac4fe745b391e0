def slugify(title: str) -> str:
    """Return the URL slug of `title` (see PROMPT.md)."""
    raise NotImplementedError
