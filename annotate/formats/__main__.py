"""``python -m annotate.formats``: print the README's format table from the registry."""

from annotate.formats import markdown_table

print(markdown_table())
