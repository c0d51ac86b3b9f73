"""Adjudication: a lead compares the N blind versions of an overlapped trajectory step by step,
picks (or merges the labels of) each step, and the result becomes the adjudicated version with
each choice's provenance kept. ``compare`` holds the pure logic."""
