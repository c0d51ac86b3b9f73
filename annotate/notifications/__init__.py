"""In-app notifications: work assigned to you, your work rejected (models, services, pages)."""
