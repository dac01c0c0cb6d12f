"""Approvals on the command line: the answers each takes now, the commands
that give them, `approvals` to list them and `approve`/`deny`/`decide` to
answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui.cli.carry_on import after_answer
from tui.cli.exits import EXIT_OK, UsageError
from tui.cli.session import engine_session, open_store
from tui.cli.text import one_line, shorten

# Approval decisions answered by a command of their own; the rest go to `decide`.
ANSWER_VERBS = {"approve": "approve", "deny": "deny", "request_changes": "request-changes"}


def cli_option(option: Any) -> str:
    """An approval's option as the command line spells it (`request-changes`)."""
    return ANSWER_VERBS.get(option.value, option.value)


def offered(approval: Any, directive: Any) -> list[Any]:
    """The answers `approval` takes now: its options, less those the engine
    refuses now (a replan with none left, changes to a plan the directive
    file lists)."""
    from engine.approvals import refused_answers

    refused = refused_answers(approval, directive)
    return [o for o in approval.options if o not in refused]


def answer_commands(approval: Any, me: str, directive: Any) -> list[str]:
    """The commands that answer `approval`: only the decisions it takes now."""
    options = offered(approval, directive)
    lines = []
    for option in options:
        verb = ANSWER_VERBS.get(option.value)
        if verb:
            comment = ' -m "what to change"' if verb == "request-changes" else ""
            lines.append(f"{me} {verb} {approval.id}{comment}")
    # One line each, every one pasteable (`retry|skip` in a shell is a pipe).
    lines += [
        f"{me} decide {approval.id} {o.value}" for o in options if o.value not in ANSWER_VERBS
    ]
    return lines


TITLE_WIDTH = 24  # a directive's title beside each of its approvals


async def list_approvals(db: Path, as_json: bool, out: Any) -> int:
    import json

    store = await open_store(db)
    try:
        pending = await store.pending_approvals()
        directives = {d.id: d for d in await store.list_directives()}
        if as_json:
            print(
                json.dumps([_as_json(a, directives[a.directive_id]) for a in pending], indent=2),
                file=out,
            )
        else:
            titles = {i: shorten(d.title, TITLE_WIDTH) for i, d in directives.items()}
            width = max((len(titles[a.directive_id]) for a in pending), default=0)
            for a in pending:
                options = "/".join(cli_option(o) for o in offered(a, directives[a.directive_id]))
                # The directive's id before its title: two runs of one file share the title.
                title = titles[a.directive_id]
                print(
                    f"{a.id}  {a.kind.value:<11} [{options}]  {a.directive_id} {title:<{width}}"
                    f"  {one_line(a.summary)}",
                    file=out,
                )
        return EXIT_OK
    finally:
        await store.close()


def _as_json(approval: Any, directive: Any) -> dict[str, Any]:
    """An approval for `approvals --json`: its `options` are the answers it
    takes now, as in the text listing, so a script never picks one the
    engine refuses."""
    fields = approval.model_dump(mode="json")
    fields["options"] = [o.value for o in offered(approval, directive)]
    return fields


async def resolve(
    db: Path,
    approval_id: str,
    decision: str,
    comment: str | None,
    out: Any,
    me: str = "directive-tui",
) -> int:
    async with engine_session(db) as (store, engine):
        approval = await store.find_approval(approval_id)
        if (
            not approval.pending
            and approval.decision is not None
            and (
                approval.decision.value == decision  # a retried script: done already
            )
        ):
            print(
                f"approval {approval.id}: already {approval.status.label}"
                f"{_which_way(approval)}, nothing changed",
                file=out,
            )
            return EXIT_OK
        if approval.pending and decision not in {o.value for o in approval.options}:
            directive = await store.get_directive(approval.directive_id)
            # what it takes now: not an answer the engine would refuse next
            allowed = ", ".join(cli_option(o) for o in offered(approval, directive))
            answers = "\n  ".join(answer_commands(approval, me, directive))
            raise UsageError(
                f"approval {approval.id} ({approval.kind.value}) takes {allowed},"
                f" not {ANSWER_VERBS.get(decision, decision)}; answer with one of:\n  {answers}"
            )
        resolved = await engine.resolve_approval(approval.id, decision, comment)
        print(f"approval {resolved.id}: {resolved.status.label}{_which_way(resolved)}", file=out)
        for line in await after_answer(store, db, resolved.directive_id, me):
            print(line, file=out)
        return EXIT_OK


def _which_way(approval: Any) -> str:
    """An escalation's status is only `resolved`: its answer says which way."""
    return f" ({approval.decision.value})" if approval.kind.value == "escalation" else ""
