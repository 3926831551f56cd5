"""Bot: frontends and wiring — Telegram (`bot.telegram`), the terminal chat, the patient
simulator, the command line, configuration, the model adapter and start-up.

Owns: everything that touches the outside world. May import: every package of the project.
"""
