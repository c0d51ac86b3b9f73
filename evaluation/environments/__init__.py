"""Tool environments, one abstraction for multi-turn evaluation and for GRPO training (pure; no Django).

- :mod:`.base`: an environment is a class whose public methods are the tools, ``reset(**row)`` and
  an optional ``get_reward()`` (TRL's ``environment_factory`` contract); running a call, comparing states.
- :mod:`.bfcl`: BFCL's multi-turn classes from the ``bfcl-eval`` wheel, composed per item.
- :mod:`.replay`: a gold trajectory's recorded results.
- :mod:`.spec`: the JSON spec an item names its environment by, resolved against the registered classes.
- :mod:`.sandbox`: every episode in a child process with time, memory and output limits and no network.

For GRPO, the class itself is TRL's ``environment_factory`` (constructed without arguments; its
tools listed from the class): ``spec.environment_class({"kind": "bfcl", "classes": [...]})``, a
registered class, or ``replay.replay_class(tools)`` for gold trajectories. TRL calls those methods
in its own process; the child-process limits are evaluation's.
"""
