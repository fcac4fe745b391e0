"""BFCL's own questions as weeyuga quality packs (#27): source (the pinned wheel, fetched and read
from the cache), request (made as BFCL's OpenAI function-calling handler makes it), scenarios (a
category as pack parts), checker and literals (BFCL's AST matching rules, written for weeyuga)."""
