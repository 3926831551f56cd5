"""Fakes of Telegram for the frontend's tests: a recording Bot API session (handler tests), a
fake Bot API server over HTTP (end-to-end tests and the benchmark), and update builders."""
