"""Bot: frontends and wiring — the terminal chat, the patient simulator, the command line,
configuration and start-up (Telegram and the dashboard join later).

Owns: everything that touches the outside world. May import: every package of the project.
"""
