"""`paperchat` command line: the library's commands (ingest, ask) and those that front ends
register in the "paperchat.commands" entry-point group (ui/: serve, mcp; evals/: eval, bench).
Nothing here imports ui/ or evals/."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rag.errors import PaperchatError
from rag.progress import progress_bar

EPILOG = """Settings come from PAPERCHAT_* environment variables (e.g. PAPERCHAT_DB_DIR,
PAPERCHAT_CHROMA_URL, PAPERCHAT_RETRIEVAL_K) and the standard OPENAI_API_KEY / OPENAI_BASE_URL;
flags override them. Nothing leaves this machine unless you configure an LLM endpoint."""


# Merge and skip notes printed under an ingest summary; --json has them all.
MAX_NOTES = 20
def int_in(low: int | None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high` (argparse exits 2 with the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{value} is out of range; use {low} to {high}"
                if high is not None
                else f"{value} is too small; use at least {low}"
            )
        return value

    return parse


def setting_int(group: str, name: str) -> Callable[[str], int]:
    """An argparse type for a flag that sets Settings.<group>.<name>: a whole number within
    the bounds the setting declares, checked the same way."""

    def parse(text: str) -> int:
        from rag.settings import Settings

        field = Settings.model_fields[group].annotation.model_fields[name]  # type: ignore[union-attr]
        low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
        high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
        return int_in(low, high)(text)

    parse.__name__ = f"{group}.{name}"  # argparse names the type in "invalid ... value"
    return parse


def settings_from_args(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from rag.errors import InputError
    from rag.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        # A group (RetrievalSettings, ...) reports its own fields: name them as variables.
        groups = [f.annotation for f in Settings.model_fields.values()]
        group = next((g for g in groups if getattr(g, "__name__", "") == exc.title), Settings)
        prefix = str(group.model_config.get("env_prefix", "PAPERCHAT_"))  # type: ignore[union-attr]
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise InputError(f"A setting from the environment is invalid: {problems}.") from None
    if getattr(args, "db", None):
        settings.db_dir = Path(args.db)
    if getattr(args, "chroma_url", None):
        settings.chroma_url = args.chroma_url
    if getattr(args, "llm_model", None):
        settings.llm.model = args.llm_model
    if getattr(args, "llm_base_url", None):
        settings.llm.base_url = args.llm_base_url
    return settings


def cmd_ingest(args: argparse.Namespace) -> int:
    from rag.errors import InputError
    from rag.pipeline import Assistant, arxiv_folder, read_papers, rebuild, record_sources

    settings = settings_from_args(args)
    # `--arxiv ""` is an (empty) query, not "no flag": it must not fall through to
    # ingesting the bundled corpus.
    from_arxiv = args.arxiv is not None or bool(args.arxiv_id)
    if from_arxiv and (args.paths or args.rebuild):
        raise InputError(
            "Give files to ingest, --rebuild or --arxiv / --arxiv-id, not two in one command."
        )
    if args.max is not None and args.arxiv is None:
        raise InputError("--max limits an --arxiv query; it needs --arxiv \"QUERY\".")
    paths = [Path(p) for p in args.paths] or None
    if args.rebuild:
        update, close = progress_bar("Rebuilding")
        try:
            report, aside = rebuild(
                settings, paths or (), on_progress=update, skip_bad=args.skip_bad
            )
        finally:
            close()
        print(f"paperchat: the old index was moved to {aside}; delete it once you no longer "
              "need it.", file=sys.stderr)
    elif from_arxiv:
        from rag.arxiv_api import fetch, parse_ids

        ids = parse_ids(args.arxiv_id or [])
        # Fetch everything before the index is opened: a failure changes nothing.
        update, close = progress_bar("Fetching from arXiv")
        try:
            fetched = fetch(
                settings, query=args.arxiv or "", ids=ids, max_results=args.max,
                on_progress=update,
            )
        finally:
            close()
        update, close = progress_bar("Indexing")
        try:
            report = Assistant.create(settings).ingest_papers(fetched.papers, on_progress=update)
        finally:
            close()
        if fetched.resumed:
            report.notes.append(f"resumed: {fetched.resumed} papers came from the run before")
        if fetched.missing:
            report.notes.append(f"not found on arXiv: {', '.join(fetched.missing)}")
        # Kept (not deleted) and recorded, so `ingest --rebuild` has these papers too.
        kept = fetched.keep(arxiv_folder(settings))
        if kept is not None:
            record_sources(settings, [], arxiv=[kept])
    else:
        # Every file is read before the index is opened: a mistyped path creates nothing.
        loaded = read_papers(paths, settings, args.skip_bad)
        update, close = progress_bar("Indexing")
        try:
            report = Assistant.create(settings).ingest_loaded(loaded, paths, on_progress=update)
        finally:
            close()
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
        return 0
    print(report.summary())
    for note in report.notes[:MAX_NOTES]:
        print(f"  - {note}")
    if len(report.notes) > MAX_NOTES:
        print(f"  - ... and {len(report.notes) - MAX_NOTES} more (--json lists them all)")
    return 0


def _open_assistant(args: argparse.Namespace) -> Any:
    from rag.embeddings import LocalEmbeddings

    settings = settings_from_args(args)
    # The model loads in a thread while chromadb is imported and the index opened: ONNX
    # Runtime builds its session without holding the GIL, so on 2 cores the two overlap
    # (the model is most of a cold `ask` after the imports).
    embeddings = LocalEmbeddings.from_settings(settings.embedding)
    embeddings.start_loading()
    from rag.pipeline import Assistant

    return Assistant.open(settings, embeddings=embeddings)


def cited_bibtex(answer: Any) -> str:
    """BibTeX entries for the papers an answer cites, in citation order."""
    from rag.bibtex import bibtex_entries
    from rag.metadata import cited_papers

    return str(bibtex_entries(cited_papers([answer])))


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answer import closest_papers
    from rag.citations import format_sources
    from rag.inputs import load_history, validate_question
    from rag.types import Answer, Rejected

    # Before the index opens: a bad question or history file is the first thing to fix.
    validate_question(args.question, settings_from_args(args).answer.max_question_chars)
    history = load_history(Path(args.history)) if args.history else []
    assistant = _open_assistant(args)
    answer: Answer | None = None
    for event in assistant.stream(args.question, history, args.k, args.mode):
        if isinstance(event, Answer):
            answer = event
        elif args.stream and not (args.json or args.bibtex):
            if isinstance(event, Rejected):
                # The text above stays on screen: say plainly that it does not count.
                print(f"\n\n— the model's answer above was rejected: {event.reason} —\n",
                      flush=True)
            else:
                print(event, end="", flush=True)
    assert answer is not None
    if args.json:
        data = answer.to_json()
        if args.bibtex:
            data["bibtex"] = cited_bibtex(answer)
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    if args.bibtex:
        # Only the entries, so `paperchat ask ... --bibtex > refs.bib` is a valid .bib file.
        entries = cited_bibtex(answer)
        print(entries if entries else "% No paper was cited.", end="" if entries else "\n")
        return 0
    if not args.stream:
        print(answer.text, end="")
    print()
    if answer.citations:
        print("\nSources:\n" + format_sources(answer.citations))
    elif closest := closest_papers(answer):
        print(f"\n{closest}")
    if answer.note:
        print(f"\nNote: {answer.note}", file=sys.stderr)
    return 0


def storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="DIR",
        help="index directory (default: $PAPERCHAT_DB_DIR, else a folder under your data directory)",
    )
    parser.add_argument(
        "--chroma-url",
        metavar="URL",
        help="use a Chroma server (e.g. http://host:8000) instead of a local directory "
        "($PAPERCHAT_CHROMA_URL)",
    )


def llm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm-model",
        metavar="NAME",
        help="chat model of an OpenAI-compatible endpoint ($PAPERCHAT_LLM_MODEL); setting it "
        "turns the LLM on",
    )
    parser.add_argument(
        "--llm-base-url",
        metavar="URL",
        help="the endpoint, e.g. http://127.0.0.1:8080/v1 ($OPENAI_BASE_URL; the key comes "
        "from $OPENAI_API_KEY, never a flag, so it stays out of shell history)",
    )


# The library's own commands: a cold `paperchat ask` loads no front end's module.
CORE_COMMANDS = ("ingest", "ask")
COMMANDS_GROUP = "paperchat.commands"


def _command_entry_points(only: str | None) -> list[Any]:
    """The registered command plugins; with `only`, just the one of that name."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name)
    return [e for e in found if only is None or e.name == only]


def build_parser(*, only: str | None = None) -> argparse.ArgumentParser:
    """All commands; with `only` (a command's name), the core ones plus that plugin alone."""
    parser = argparse.ArgumentParser(
        prog="paperchat",
        description="Answer questions about research papers from their abstracts, with citations.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = sub.add_parser(
        "ingest",
        help="add papers to the index",
        description="Add papers to the index. With no PATH, ingests the bundled corpus. Re-ingesting "
        "the same files changes nothing; a changed abstract replaces its old version.",
    )
    ingest.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="BibTeX (.bib), RIS (.ris), CSL-JSON (.json, Zotero / Better BibTeX export), "
        "JSON Lines (.jsonl: title, abstract, optional url, authors, date, doi, arxiv_id), "
        "listing pages (.txt: title paragraph, then abstract paragraph) or folders of them",
    )
    ingest.add_argument(
        "--skip-bad",
        action="store_true",
        help="read the other entries of a file with malformed ones (they are listed); by "
        "default a malformed entry stops the whole file and nothing is ingested",
    )
    ingest.add_argument(
        "--arxiv",
        metavar="QUERY",
        help='fetch papers from the arXiv API, e.g. "ti:llava AND cat:cs.CV" (needs network '
        "access; resumable: re-run the same command after an interruption)",
    )
    ingest.add_argument(
        "--max",
        type=setting_int("arxiv", "max_results"),
        metavar="N",
        help="papers an --arxiv query fetches, 1 to 10000 (default 50, "
        "$PAPERCHAT_ARXIV_MAX_RESULTS)",
    )
    ingest.add_argument(
        "--arxiv-id",
        nargs="+",
        metavar="ID",
        help="fetch these arXiv papers, e.g. 2401.12345 2312.00001 (needs network access)",
    )
    storage_options(ingest)
    ingest.add_argument(
        "--rebuild",
        action="store_true",
        help="start a fresh local index from the files this one was built from (and any PATH "
        "given); the old index directory is moved aside, not deleted. For a damaged index.",
    )
    ingest.add_argument(
        "--json",
        action="store_true",
        help='print {"papers", "new", "updated", "unchanged", "chunks", "migrated", "merged", '
        '"skipped", "notes"} instead of a summary',
    )
    ingest.set_defaults(func=cmd_ingest)

    ask = sub.add_parser(
        "ask",
        help="answer one question",
        description="Answer a question from the indexed abstracts, citing the papers used.",
    )
    ask.add_argument("question", help="the question, in plain language")
    storage_options(ask)
    ask.add_argument(
        "--k", type=setting_int("retrieval", "k"), metavar="N",
        help="papers to retrieve, 1 to 20 (default 5)",
    )  # fmt: skip
    ask.add_argument(
        "--mode",
        choices=["auto", "extractive", "llm"],
        help="auto (default): the LLM when configured, else extractive; extractive: quote "
        "abstract sentences; llm: the configured OpenAI-compatible endpoint",
    )
    ask.add_argument(
        "--history",
        metavar="FILE",
        help='conversation so far: a JSON list of {"role": "user"|"assistant", "content": ...}',
    )
    ask.add_argument(
        "--stream",
        action="store_true",
        help="print the answer as it is produced: an LLM answer token by token, an extractive "
        "one sentence by sentence (as the web chat shows it). An extractive answer is composed "
        "a few milliseconds after retrieval, so its sentences follow each other closely",
    )
    llm_options(ask)
    ask.add_argument(
        "--json",
        action="store_true",
        help="print answer, abstained, citations, retrieved, mode, timings_ms (and note) as JSON",
    )
    ask.add_argument(
        "--bibtex",
        action="store_true",
        help="print BibTeX entries of the cited papers instead of the answer (with --json: "
        "add them as a \"bibtex\" string)",
    )
    ask.set_defaults(func=cmd_ask)

    # Front ends add their own commands (serve, mcp, eval, bench) through the
    # "paperchat.commands" entry-point group, as llm's plugins do: rag/ knows none of them.
    for entry in _command_entry_points(only):
        entry.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    if command in CORE_COMMANDS:
        only: str | None = ""  # no plugin
    else:  # one plugin's command, or every command (for --help and for typos)
        names = {e.name for e in _command_entry_points(None)}
        only = command if command in names else None
    args = build_parser(only=only).parse_args(words)
    try:
        return int(args.func(args))
    except PaperchatError as exc:
        print(f"paperchat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paperchat: interrupted; re-run the same command to resume.", file=sys.stderr)
        if argv is None:
            # Leave at once, as a kill would (an ingest is built to survive one): Python's exit
            # joins the embedding pool's threads, which can wait on workers that were just
            # stopped mid-start (a Ctrl-C'd ingest hung in about 1 run in 4).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except Exception as exc:  # a bug: one line on screen, the traceback in a file
        where = _save_traceback()
        print(
            f"paperchat: unexpected error ({type(exc).__name__}: {exc}). This is a bug in "
            f"paperchat; please report it with the traceback saved in {where}.",
            file=sys.stderr,
        )
        return 1


def _save_traceback() -> str:
    import tempfile
    import traceback

    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="paperchat-error-", suffix=".txt", delete=False, encoding="utf-8"
        ) as handle:
            traceback.print_exc(file=handle)
            return handle.name
    except OSError:
        traceback.print_exc()
        return "the output above"


if __name__ == "__main__":
    sys.exit(main())
