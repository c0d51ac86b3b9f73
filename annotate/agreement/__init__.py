"""Overlap (several annotators label the same trajectory blind) and their agreement (issue 17)."""
