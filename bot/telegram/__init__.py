"""Telegram frontend (aiogram 3): patients chat with the consultation service in private chats.

`create_dispatcher(service, redis=..., options=...)` builds the aiogram Dispatcher: the patient
router, its middlewares (errors, flood throttle), Redis FSM storage with per-patient event
isolation, and the services handlers need, injected as workflow data. `serve(settings, rules)`
runs it in polling (default) or webhook mode. Handlers only build an `Inbound`, call the service
and render what comes back; they never reach into the engine.
"""

from bot.telegram.dispatcher import TelegramOptions, create_dispatcher
from bot.telegram.runner import create_bot, serve

__all__ = ["TelegramOptions", "create_bot", "create_dispatcher", "serve"]
