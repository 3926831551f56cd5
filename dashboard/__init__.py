"""Dashboard: the family-doctor team's web pages.

Owns: the aiohttp application that lists flagged cases (live, over server-sent events), shows a
case (transcript, timeline, triage reasoning, SBAR summary, audit trail) and lets members claim,
close and annotate it; team-member login (scrypt password hashes or one-time links), sessions in
Redis, CSRF protection; the Jinja2 templates and static files under `dashboard/templates` and
`dashboard/static`.
May import: storage, dialog types (dialog.team, dialog.session, dialog.events), safety types.
Never `bot` (settings arrive as the `DashboardSettings` protocol) and never `dialog.service`.
"""

from dashboard.app import DashboardSettings, base_url, create_app, login_url, start_dashboard
from dashboard.auth import hash_password, verify_password

__all__ = [
    "DashboardSettings",
    "base_url",
    "create_app",
    "hash_password",
    "login_url",
    "start_dashboard",
    "verify_password",
]
