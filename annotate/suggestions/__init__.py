"""Suggestions: labels a judge model proposes for steps, waiting for a person to accept or
dismiss them. A suggestion is never a label; accepting one saves a normal revision (crediting the
annotator who accepted, with the judge's provenance in its summary)."""
