"""Dialog: the consultation engine every frontend drives.

Owns: the state machine, protocol loading and validation, reading free text into answers,
question selection, triage, the session and case records, and the consultation service.
May import: `safety`, and the interfaces of `model` and of storage (`dialog.store.Store`);
never aiogram, redis or llama_cpp.
"""
