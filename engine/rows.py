"""Rows to models and back: per table, which columns hold JSON and which
model; the parsed specs every read of a directive or step shares; and the
steps query the store, the driver and planning all read through."""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from engine.models import (
    ApprovalRequest,
    Chain,
    Directive,
    DirectiveSpec,
    Evaluation,
    Step,
    StepRun,
    StepSpec,
    TokenUsage,
    VerifierResult,
)

# Appended to a `WHERE` on `chain_steps s`: pending steps whose every
# dependency passed or was skipped (ready to be promoted).
READY_SQL = (
    " AND s.status = 'pending' AND NOT EXISTS ("
    " SELECT 1 FROM step_deps d JOIN chain_steps p ON p.id = d.depends_on"
    " WHERE d.step_id = s.id AND p.status NOT IN ('passed', 'skipped'))"
)


def dump(value: Any) -> Any:
    """Column value: models, lists and dicts as JSON text; the rest as is
    (str enums are str, which sqlite3 stores as text)."""
    if isinstance(value, (BaseModel, list, dict)):
        return to_json(value).decode()
    return value


@lru_cache(maxsize=64)
def directive_spec(text: str) -> DirectiveSpec:
    """The spec holds every planned step: parsing it is O(steps), and the
    engine reads the directive several times per step. The text changes only
    when the limits do, and nothing mutates a spec in place (changes are
    `model_copy`), so one parsed object per text serves every read."""
    return DirectiveSpec.model_validate_json(text)


@lru_cache(maxsize=4096)
def _step_spec(text: str) -> StepSpec:
    """A step's spec never changes once its chain is stored: one parse per
    text serves every status change of the step."""
    return StepSpec.model_validate_json(text)


def directive_from_row(row: sqlite3.Row, spec: DirectiveSpec | None = None) -> Directive:
    d = dict(row)
    text = d.pop("spec", None)
    d["spec"] = spec if spec is not None else directive_spec(text)
    d.pop("title", None)
    d.pop("spec_rev", None)
    return Directive.model_validate(d)


def step_from_row(row: sqlite3.Row, deps: list[str]) -> Step:
    d = dict(row)
    d["spec"] = _step_spec(d["spec"])
    d["depends_on"] = deps
    return Step.model_validate(d)


# Every directive column but the spec text, which `Tx.directive` fetches
# only when its connection has not parsed this revision yet.
DIRECTIVE_HEAD = ", ".join(f for f in Directive.model_fields if f != "spec") + ", spec_rev"


def run_from_row(row: sqlite3.Row) -> StepRun:
    d = dict(row)
    d["modified_files"] = json.loads(d["modified_files"])
    d["usage"] = TokenUsage.model_validate_json(d["usage"])
    return StepRun.model_validate(d)


def evaluation_from_row(row: sqlite3.Row) -> Evaluation:
    d = dict(row)
    d["results"] = [VerifierResult.model_validate(r) for r in json.loads(d["results"])]
    d["flags"] = json.loads(d["flags"])
    d["passed"] = bool(d["passed"])
    return Evaluation.model_validate(d)


def approval_from_row(row: sqlite3.Row) -> ApprovalRequest:
    d = dict(row)
    d["options"] = json.loads(d["options"])
    return ApprovalRequest.model_validate(d)


def chain_from_row(row: sqlite3.Row) -> Chain:
    d = dict(row)
    d["superseded"] = bool(d["superseded"])
    return Chain.model_validate(d)


def list_steps(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[Step]:
    """The steps `where` selects (on `chain_steps s`), in layer and row
    order, with their dependencies: two queries, not one per step."""
    rows = conn.execute(
        f"SELECT s.* FROM chain_steps s WHERE {where} ORDER BY s.layer, s.row", params
    ).fetchall()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    deps: dict[str, list[str]] = {i: [] for i in ids}
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        marks = ", ".join("?" for _ in chunk)
        for step_id, dep in conn.execute(
            f"SELECT step_id, depends_on FROM step_deps WHERE step_id IN ({marks})", chunk
        ):
            deps[step_id].append(dep)
    return [step_from_row(r, deps[r["id"]]) for r in rows]
