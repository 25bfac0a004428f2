"""The `agentcache` command line (also `python -m agentcache`): look into a cache store and manage it.

```
agentcache stats [--prometheus]                   hits, misses and savings of every process; what the store holds
agentcache ls [--namespace NS] [--tag T] ...      list entries
agentcache show KEY                               one entry: metadata and value (KEY or a digest prefix)
agentcache clear [--namespace NS] [--yes]         delete entries
agentcache invalidate --tag T | --event NAME | --key KEY
agentcache info                                   resolved settings and backend
agentcache eval PAIRS.jsonl [--max-wrong RATE]    score the semantic cache on labelled pairs (exit 4 over budget)
```

Every command works on the configured store (`AGENTCACHE_URL`, `.env`, or the SQLite default) unless `--url`
names another. Exit status: 0 ok, 1 nothing found, 2 usage or configuration error, 3 the store failed,
4 `eval` measured more wrong answers than --max-wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from agentcache.cli.eval import add_eval_arguments, cmd_eval
from agentcache.cli.inspect import cmd_ls, cmd_show, cmd_stats
from agentcache.cli.manage import cmd_clear, cmd_info, cmd_invalidate
from agentcache.cli.store import EXIT_OK, EXIT_STORE, EXIT_USAGE, CliError, Session
from agentcache.errors import AgentCacheError, BackendError, ConfigurationError, MissingDependencyError

__all__ = ["build_parser", "main"]


_Handler = Callable[[Session, argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `agentcache` command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="backend URL (default: the configured store)")
    common.add_argument(
        "--json", dest="as_json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    parser = argparse.ArgumentParser(
        prog="agentcache",
        description="Inspect and manage an agentcache store.",
        epilog="Exit status: 0 ok, 1 nothing found, 2 usage or configuration error, 3 the store failed, "
        "4 eval over its --max-wrong budget.",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="backend URL, e.g. sqlite:///path.db or redis://host:6379/0 (default: AGENTCACHE_URL)",
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="print JSON for scripts")
    from agentcache import __version__

    parser.add_argument("--version", action="version", version=f"agentcache {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: _Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    stats = command("stats", cmd_stats, "hits, misses and savings summed over every process, and what the store holds")
    stats.add_argument(
        "--prometheus",
        action="store_true",
        help="print the same in Prometheus's text exposition format (e.g. for node_exporter's textfile collector)",
    )

    ls = command("ls", cmd_ls, "list cached entries")
    ls.add_argument("--namespace", "-n", metavar="NS", help="only NS and the namespaces nested under it (NS/...)")
    ls.add_argument("--tag", "-t", metavar="TAG", help="only entries carrying TAG")
    ls.add_argument("--layer", "-l", metavar="LAYER", help="only this layer (tool, response, embedding, ...)")
    ls.add_argument("--function", "-f", metavar="SUBSTR", help="only functions whose name contains SUBSTR")
    ls.add_argument("--limit", type=int, default=100, metavar="N", help="show at most N entries (0: all; default 100)")
    ls.add_argument("--all", "-a", action="store_true", help="include internal records (stats snapshots, event rules)")

    show = command("show", cmd_show, "show one entry: metadata and value")
    show.add_argument("key", metavar="KEY", help="a full key (ac:v1:...) or a unique digest prefix from `ls`")
    show.add_argument("--full", action="store_true", help="print long values in full")

    clear = command("clear", cmd_clear, "delete entries: one namespace, or everything agentcache stored")
    clear.add_argument("--namespace", "-n", metavar="NS", help="only NS and the namespaces nested under it")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")

    inv = command("invalidate", cmd_invalidate, "delete entries by tag, by a registered event, or by key")
    what = inv.add_mutually_exclusive_group(required=True)
    what.add_argument("--tag", "-t", action="append", metavar="TAG", help="entries carrying TAG (repeatable)")
    what.add_argument("--event", "-e", metavar="NAME", help="what an application registered with agentcache.on(NAME)")
    what.add_argument("--key", "-k", metavar="KEY", help="one entry: full key or unique digest prefix")
    inv.add_argument("--namespace", "-n", metavar="NS", help="with --tag: only inside NS (and NS/...)")

    command("info", cmd_info, "show the resolved settings and the backend")
    add_eval_arguments(
        command("eval", cmd_eval, "score the semantic cache on your labelled pairs (exit 4 over budget)")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `agentcache` command line with `argv` (default: `sys.argv[1:]`); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: return the status instead of exiting
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    url: str | None = args.url
    if url is not None and not url.strip():
        url = None
    session = Session(url)
    try:
        if session.url.startswith("memory:"):
            sys.stderr.write("agentcache: note: a memory:// store lives inside one process; this one is empty.\n")
        handler: _Handler = args.handler
        return handler(session, args)
    except CliError as exc:
        sys.stderr.write(f"agentcache {args.command}: {exc}\n")
        return exc.code
    except MissingDependencyError as exc:
        sys.stderr.write(f"agentcache {args.command}: cannot open {session.url}: {exc}\n")
        return EXIT_USAGE
    except ConfigurationError as exc:
        sys.stderr.write(f"agentcache {args.command}: {exc}\n")
        return EXIT_USAGE
    except BackendError as exc:
        sys.stderr.write(
            f"agentcache {args.command}: the store {session.url} failed: {exc}\n"
            "  check that it is reachable, or point --url / AGENTCACHE_URL at another store\n"
        )
        return EXIT_STORE
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:  # `agentcache ls | head`: the reader left; keep the interpreter from complaining at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        with contextlib.suppress(AgentCacheError):
            session.close()
