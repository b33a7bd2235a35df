"""Facts about this install and this run, and the user's choice.

Consent and the opt-out notice, the install id and event ids, the deploy-shape
probes and context, lifecycle events (first run, version funnel), sampling,
endpoint rules, the environment check, serverless detection and the legacy
(pre-telespool) state migration. Presence-only: nothing here reads a value
that could identify a person.
"""
