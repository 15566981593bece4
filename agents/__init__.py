"""Agents: who can take a ticket (the pure routing decision), assignment storage, agent and team
config types. Never imports `router`."""
