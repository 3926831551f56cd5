"""The `wenzhen` command line: chat, simulate, serve, dashboard, team, cases and rules."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from bot.config import ConfigError, Settings, load_settings
from safety import DataFileError


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _rules_or_exit(directory: Path) -> Any:
    """The rules in `directory`; if they do not validate, every problem and exit code 1."""
    from dialog.ruleset import load_rules

    try:
        return load_rules(directory)
    except DataFileError as exc:
        click.echo(f"the rules in {directory} do not validate; not starting:", err=True)
        for error in exc.errors:
            click.echo(f"  {error}", err=True)
        sys.exit(1)


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """wenzhen (问诊): a triage consultation bot. Without a subcommand: serve Telegram when
    TELEGRAM_BOT_TOKEN is set, otherwise open a consultation in this terminal."""
    if ctx.invoked_subcommand is None:
        settings = _settings()
        if settings.telegram_bot_token is not None:
            ctx.invoke(serve)
        else:
            ctx.invoke(chat)


@cli.command()
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help="Language to start in.")
def chat(lang: str | None) -> None:
    """A consultation in the terminal, on the embedded defaults."""
    settings = _settings(language=lang)
    logging.basicConfig(level=logging.WARNING)
    rules = _rules_or_exit(settings.rules_dir)

    async def run() -> None:
        from bot.app import build_service, open_store
        from bot.phrasing import open_phraser
        from bot.terminal import chat as terminal_chat

        async with open_store(settings) as store, open_phraser(settings) as phraser:
            await terminal_chat(build_service(settings, rules, store, phraser), lang=lang)

    from model import ModelConfigError

    try:
        asyncio.run(run())
    except ModelConfigError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.argument("cases", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one result line per case (JSON Lines).",
)
@click.option(
    "--unknown",
    type=click.Choice(["unsure", "no"]),
    default="unsure",
    help="How the simulated patient answers what the case does not say.",
)
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Rules directory (default: the live rules).",
)
@click.option("--group-by", default=None, help="Also break the summary down by this case field.")
@click.option(
    "--personas",
    "persona_spec",
    default=None,
    help="Also play every case as these personas write it: all, or names such as terse,misspelt "
    "(bot/personas.py); a table compares them with the cases as written.",
)
def simulate(
    cases: Path,
    out_path: Path | None,
    unknown: str,
    rules_dir: Path | None,
    group_by: str | None,
    persona_spec: str | None,
) -> None:
    """Run a case file through the consultation service and print the summary; with --personas,
    once more per persona, then accuracy, under-triage and red-flag recall per persona."""
    from bot.personas import Persona, select
    from bot.report import render, render_personas, summarise
    from bot.simulator import CaseFileError, iter_jsonl, read_cases, simulate_case
    from dialog.service import ConsultationService
    from storage.memory import MemoryStore

    settings = _settings(rules_dir=rules_dir)
    rules = _rules_or_exit(settings.rules_dir)
    try:
        loaded = read_cases(cases)
    except CaseFileError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        personas: list[Persona | None] = [None, *select(persona_spec)] if persona_spec else [None]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--personas") from None
    plays = [(persona, case) for persona in personas for case in loaded]

    async def run() -> list[dict[str, Any]]:
        service = ConsultationService(
            rules, MemoryStore(), settings.region_config, default_lang=settings.language
        )
        results = []
        for persona, case in tqdm(plays, desc="simulating", unit="case", file=sys.stderr):
            prefix = f"sim-{persona.name}" if persona else "sim"
            result = await simulate_case(service, case, unknown, prefix, persona)  # type: ignore[arg-type]
            for extra in ("protocol", "category", "kind"):
                if group_by == extra and extra in (case.model_extra or {}):
                    result[f"expected_{extra}"] = case.model_extra[extra]  # type: ignore[index]
            results.append(result)
        return results

    results = asyncio.run(run())
    if out_path is not None:
        out_path.write_text("\n".join(iter_jsonl(results)) + "\n", encoding="utf-8")
    as_written = [result for result in results if result["persona"] == "none"]
    click.echo(render(summarise(as_written, f"expected_{group_by}" if group_by else None)))
    if persona_spec:
        click.echo(render_personas(results))


@cli.group()
def rules() -> None:
    """Operators: check, test and compare rule sets."""


@rules.command("check")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
def rules_check(path: Path | None) -> None:
    """Validate every protocol, lexicon, red-flag and locale file (default: the live rules)."""
    from dialog.ruleset import load_rules

    directory = path or _settings().rules_dir
    click.echo(f"rules: {directory}")
    try:
        loaded = load_rules(directory)
    except DataFileError as exc:
        for error in exc.errors:
            click.echo(str(error))
        click.echo(f"{len(exc.errors)} error(s)")
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(str(warning))
    click.echo(
        f"ok: version {loaded.version}, {len(loaded.protocols)} protocols, "
        f"{len(loaded.red_flags.flags)} red flags, {len(loaded.lexicon.concepts)} concepts, "
        f"{len(loaded.warnings)} warning(s)"
    )


def _default_cases() -> list[Path]:
    """The project's case library, when running from a checkout."""
    library = Path(__file__).resolve().parent.parent / "cases" / "library"
    return [library] if library.is_dir() else []


@rules.command("test")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@click.option(
    "--cases",
    "cases",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Case files or folders (default: the case library).",
)
def rules_test(path: Path | None, cases: tuple[Path, ...]) -> None:
    """Run the case library against these rules; fail on any case that misses its expectation."""
    from bot.report import render, summarise
    from bot.rules_tools import case_files, describe_failure, failures, run_cases

    directory = path or _settings().rules_dir
    files = case_files(list(cases) or _default_cases())
    if not files:
        raise click.ClickException("no case files: give --cases")
    results = run_cases(_rules_or_exit(directory), files)
    click.echo(f"rules: {directory}; {len(results)} cases from {len(files)} file(s)")
    click.echo(render(summarise(results)))
    failed = failures(results)
    for result in failed:
        click.echo(describe_failure(result))
    if failed:
        raise click.ClickException(f"{len(failed)} case(s) miss their expectation")
    click.echo("all cases meet their expectations")


@rules.command("diff")
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--cases",
    "cases",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Case files or folders (default: the case library).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as an HTML page.",
)
def rules_diff(old: Path, new: Path, cases: tuple[Path, ...], html_path: Path | None) -> None:
    """What an edit does: every case whose level, questions, red flag or rule changes."""
    from bot.rules_tools import case_files, compare, render_html, render_text, run_cases

    files = case_files(list(cases) or _default_cases())
    if not files:
        raise click.ClickException("no case files: give --cases")
    changes = compare(run_cases(_rules_or_exit(old), files), run_cases(_rules_or_exit(new), files))
    click.echo(render_text(changes))
    if html_path is not None:
        html_path.write_text(render_html(changes, str(old), str(new)), encoding="utf-8")
        click.echo(f"report: {html_path}")


@rules.command("history")
@click.option("--limit", default=20, show_default=True, help="How many events, newest first.")
def rules_history(limit: int) -> None:
    """Rules versions that went live or were refused: who, when, which files, what changed."""
    from bot.app import open_redis
    from storage.rules_history import RulesHistory

    async def show() -> None:
        async with open_redis(_settings()) as redis:
            history = RulesHistory(redis)
            status = await history.status()
            if status is not None:
                since = f"{status.since:%Y-%m-%d %H:%M}"
                click.echo(f"live: {status.live_version} since {since} ({status.directory})")
            for event in await history.events(limit):
                files = ", ".join(event.files_changed) or "-"
                at = f"{event.at:%Y-%m-%d %H:%M:%S}"
                click.echo(f"{at} {event.action:9} {event.version} by {event.who}; {files}")

    asyncio.run(show())


@rules.command("rollback")
@click.argument("version")
def rules_rollback(version: str) -> None:
    """Put the files of an earlier live VERSION back into the rules directory. A running bot
    then checks and tests them like any edit before they go live."""
    from bot.app import open_redis
    from bot.rules_keeper import write_files
    from storage.rules_history import RulesHistory

    settings = _settings()

    async def fetch() -> dict[str, str] | None:
        async with open_redis(settings) as redis:
            return await RulesHistory(redis).files(version)

    files = asyncio.run(fetch())
    if files is None:
        raise click.ClickException(f"no files kept for version {version}; see `wenzhen rules history`")
    write_files(files, settings.rules_dir)
    click.echo(f"wrote {len(files)} file(s) of {version} into {settings.rules_dir}")
    _rules_or_exit(settings.rules_dir)
    click.echo("they validate; the running bot tests them and makes them live (or send /reload)")


@cli.command()
def serve() -> None:
    """Serve patients on Telegram (needs TELEGRAM_BOT_TOKEN): long polling, or a webhook when
    WENZHEN_TELEGRAM_WEBHOOK_URL is set."""
    from aiogram.utils.token import TokenValidationError, validate_token

    from bot.telegram import serve as serve_telegram
    from bot.telegram.texts import MissingTextsError

    settings = _settings()
    if settings.telegram_bot_token is None:
        raise click.ClickException("TELEGRAM_BOT_TOKEN is not set; `wenzhen chat` needs none")
    try:
        validate_token(settings.telegram_bot_token.get_secret_value())
    except TokenValidationError:
        raise click.ClickException("TELEGRAM_BOT_TOKEN is not a bot token (123456:ABC...)") from None
    from bot.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format or "json")
    rules = _rules_or_exit(settings.rules_dir)
    try:
        asyncio.run(serve_telegram(settings, rules))
    except MissingTextsError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--redis-prefix", default="wz:", hidden=True, help="Redis key prefix (for tests).")
def dashboard(redis_prefix: str) -> None:
    """The doctor team's web dashboard, on WENZHEN_DASHBOARD_HOST:WENZHEN_DASHBOARD_PORT
    (default 127.0.0.1:8080); members sign in with a password hash or a login link."""
    import signal

    from dashboard import base_url, start_dashboard

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not settings.teams:
        click.echo("warning: no [[teams]] configured, so nobody can sign in", err=True)

    async def run() -> None:
        from bot.app import open_redis

        async with open_redis(settings) as redis:
            runner = await start_dashboard(settings, redis, prefix=redis_prefix)
            click.echo(f"dashboard: {base_url(settings)} (Ctrl-C stops it)", err=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()

    try:
        asyncio.run(run())
    except OSError as exc:
        raise click.ClickException(f"cannot serve the dashboard: {exc}") from None


@cli.group()
def team() -> None:
    """The doctor team: dashboard login links and password hashes."""


@team.command("login-link")
@click.argument("member_id")
@click.option(
    "--minutes",
    type=click.IntRange(1, 7 * 24 * 60),
    default=30,
    show_default=True,
    help="How long the link works (it works once).",
)
def team_login_link(member_id: str, minutes: int) -> None:
    """Print a one-time dashboard login link for MEMBER_ID."""
    from datetime import timedelta

    from dashboard import login_url
    from storage.team_board import TeamBoard

    settings = _settings()
    if settings.roster.member(member_id) is None:
        raise click.ClickException(f"{member_id} is not a member of any team in the configuration")

    async def run() -> str:
        from bot.app import open_redis

        async with open_redis(settings) as redis:
            return await TeamBoard(redis).issue_login_token(member_id, ttl=timedelta(minutes=minutes))

    click.echo(login_url(settings, asyncio.run(run())))


@team.command("hash-password")
def team_hash_password() -> None:
    """Ask for a password (twice) and print its hash for a member's `password_hash`."""
    from dashboard import hash_password

    password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise click.ClickException("use at least 8 characters")
    click.echo(hash_password(password))


@cli.group("cases")
def cases_group() -> None:
    """The clinic's records of flagged and finished consultations."""


@cases_group.command("export")
@click.argument("case_id")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON to this file (default: standard output).",
)
@click.option("--redis-prefix", default="wz:", hidden=True, help="Redis key prefix (for tests).")
def cases_export(case_id: str, out_path: Path | None, redis_prefix: str) -> None:
    """CASE_ID as JSON for the clinic's records: the case record (answers, triage, transcript),
    the doctor team's ticket and the audit trail, as far as they are still kept."""
    from storage.export import export_case

    settings = _settings()

    async def run() -> str | None:
        from bot.app import open_redis

        async with open_redis(settings) as redis:
            found = await export_case(redis, case_id, prefix=redis_prefix)
        return found.model_dump_json(indent=2) if found is not None else None

    document = asyncio.run(run())
    if document is None:
        raise click.ClickException(f"no case {case_id}: unknown, expired or forgotten")
    if out_path is None:
        click.echo(document)
    else:
        out_path.write_text(document + "\n", encoding="utf-8")
        click.echo(f"case {case_id}: {out_path}", err=True)


def main() -> None:
    cli()
