"""The `wenzhen` command line: chat, simulate, serve, dashboard and rules."""

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
def simulate(
    cases: Path, out_path: Path | None, unknown: str, rules_dir: Path | None, group_by: str | None
) -> None:
    """Run a case file through the consultation service and print the summary."""
    from bot.report import render, summarise
    from bot.simulator import CaseFileError, iter_jsonl, read_cases, simulate_case
    from dialog.service import ConsultationService
    from storage.memory import MemoryStore

    settings = _settings(rules_dir=rules_dir)
    rules = _rules_or_exit(settings.rules_dir)
    try:
        loaded = read_cases(cases)
    except CaseFileError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> list[dict[str, Any]]:
        service = ConsultationService(
            rules, MemoryStore(), settings.region_config, default_lang=settings.language
        )
        results = []
        for case in tqdm(loaded, desc="simulating", unit="case", file=sys.stderr):
            result = await simulate_case(service, case, unknown)  # type: ignore[arg-type]
            for extra in ("protocol", "category", "kind"):
                if group_by == extra and extra in (case.model_extra or {}):
                    result[f"expected_{extra}"] = case.model_extra[extra]  # type: ignore[index]
            results.append(result)
        return results

    results = asyncio.run(run())
    if out_path is not None:
        out_path.write_text("\n".join(iter_jsonl(results)) + "\n", encoding="utf-8")
    click.echo(render(summarise(results, f"expected_{group_by}" if group_by else None)))


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
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    rules = _rules_or_exit(settings.rules_dir)
    try:
        asyncio.run(serve_telegram(settings, rules))
    except MissingTextsError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
def dashboard() -> None:
    """The doctor team's web dashboard."""
    raise click.ClickException("the dashboard is not built yet (issue 7)")


def main() -> None:
    cli()
