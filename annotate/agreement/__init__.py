"""Agreement between annotators on the same trajectories (see ``annotate.agreement.measures``)."""
