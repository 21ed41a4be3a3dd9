"""`rasa-flex-handoff`: add the Flex handoff to a Rasa 3.6 project (`init`), or check one has it (`check`)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence, TextIO

from rasa_flex_handoff import __version__
from rasa_flex_handoff.bot_project import ADDED, CONFLICT, NOTE, Finding, Plan, find_project, plan_setup
from rasa_flex_handoff.yaml_splice import ProjectError

EXIT_OK = 0
EXIT_CONFLICTS = 1  # init: something stands in the handoff's way; check: something is missing too
EXIT_USAGE = 2  # bad arguments, or DIR is not a Rasa project

LABELS = {ADDED: "added", NOTE: "note", CONFLICT: "CONFLICT"}

DESCRIPTION = """\
Add the Flex handoff to a Rasa 3.6 project, or check that one has it.

init adds what the handoff needs and prints each change: the intents talk_to_agent and end_chat,
the handoff's slots, actions and responses in the domain (domain.yml, or a new domain/handoff.yml
in a domain directory), their training examples and rules (data/handoff_nlu.yml,
data/handoff_rules.yml), HandoffPolicy in config.yml, the two channels in credentials.yml, an
action_endpoint in endpoints.yml when none is set, and the import of the handoff actions in the
action package. It keeps your comments, order and entries, and never replaces what you wrote: a
definition the handoff cannot work with is reported as a CONFLICT. Running it again changes nothing.

exit codes: 0 done (or, for check, nothing missing); 1 conflicts to resolve by hand (check: also
something missing); 2 usage error, e.g. DIR is not a Rasa project.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rasa-flex-handoff", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{init,check}")

    init = commands.add_parser(
        "init",
        help="add what the handoff needs to a Rasa project (exit 1 when conflicts remain)",
        description="Add what the Flex handoff needs to the Rasa project in DIR and print each change. "
        "Exit code 0 when done, 1 when conflicts remain to be resolved by hand (they are printed), "
        "2 when DIR is not a Rasa project.",
    )
    check = commands.add_parser(
        "check",
        help="exit 1 naming what the project lacks for the handoff, 0 when complete",
        description="Name what the Rasa project in DIR lacks for the Flex handoff (what init would add) and "
        "any conflicts; changes nothing. Exit code 0 when complete, 1 otherwise, 2 when DIR is not a Rasa project.",
    )
    for command in (init, check):
        command.add_argument("directory", metavar="DIR", nargs="?", default=".", help="the Rasa project (default: .)")
        command.add_argument(
            "--actions",
            metavar="PACKAGE",
            default="actions",
            help="the action package (or module) the action server loads (default: actions)",
        )
    init.add_argument("--dry-run", action="store_true", help="print the diff of every file init would change; write nothing")
    return parser


def _print_findings(findings: Sequence[Finding], out: TextIO) -> None:
    for finding in findings:
        print(f"  {LABELS[finding.kind]:<9} {finding}", file=out)


def _print_conflicts_footer(plan: Plan, out: TextIO) -> None:
    count = len(plan.conflicts)
    if count:
        print(
            f"{count} conflict{'s' if count > 1 else ''}: the handoff will not work until you resolve "
            f"{'them' if count > 1 else 'it'} by hand (see CONFLICT above), then run init again.",
            file=out,
        )


def _init(plan: Plan, dry_run: bool, out: TextIO) -> int:
    print(f"rasa-flex-handoff init {plan.project.root}{' (dry run)' if dry_run else ''}", file=out)
    _print_findings(plan.findings, out)
    if not plan.files:
        print("Nothing needed changing.", file=out)
    elif dry_run:
        print(file=out)
        out.write(plan.diff())
        print(f"Dry run: {len(plan.files)} file(s) would change; nothing was written.", file=out)
    else:
        plan.apply()
        print(f"Changed {len(plan.files)} file(s): {', '.join(change.rel for change in plan.files)}.", file=out)
    _print_conflicts_footer(plan, out)
    return EXIT_CONFLICTS if plan.conflicts else EXIT_OK


def _check(plan: Plan, out: TextIO) -> int:
    if plan.complete:
        print(f"{plan.project.root} has everything the handoff needs.", file=out)
        _print_findings(plan.notes, out)
        return EXIT_OK
    print(f"{plan.project.root} lacks what the handoff needs (`rasa-flex-handoff init` adds it):", file=out)
    for finding in plan.findings:
        label = {ADDED: "missing", NOTE: "note", CONFLICT: "CONFLICT"}[finding.kind]
        print(f"  {label:<9} {finding}", file=out)
    _print_conflicts_footer(plan, out)
    return EXIT_CONFLICTS


def main(argv: Optional[List[str]] = None) -> int:
    """The console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        plan = plan_setup(find_project(args.directory, actions=args.actions))
    except ProjectError as e:
        print(f"rasa-flex-handoff {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "init":
        return _init(plan, args.dry_run, sys.stdout)
    return _check(plan, sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
