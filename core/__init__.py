"""The base layer: pure helpers every app may use. Imports no Django and no other project package."""
