"""GRPO rollouts and dashboard: the episodes a run samples, stored as trajectories for curation
(``store``), the pair two of them make, the reward charts (``episodes``, ``charts``: pure) and the
pages and API that show them (``views``, ``api``)."""
