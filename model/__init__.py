"""Model: language-model backends that phrase replies, read free text and summarise cases.

Owns: backends, prompts and the generation queue. May import: nothing of the project.
The triage level never comes from here.
"""
