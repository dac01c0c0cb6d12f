"""What a confidence level means under each autonomy: the engine's one
decision table for a finished, evaluated attempt."""

from __future__ import annotations

from enum import StrEnum

from engine.models import Autonomy, ConfidenceLevel


class Verdict(StrEnum):
    PASS = "pass"  # passed (merged into the integration branch, if any)
    ASK = "ask"  # awaiting a person's approval
    REWORK = "rework"  # back with instructions, or blocked at the limit


L, A = ConfidenceLevel, Autonomy

VERDICTS: dict[tuple[ConfidenceLevel, Autonomy], Verdict] = {
    (L.GREEN, A.FULL_AUTO): Verdict.PASS,
    (L.GREEN, A.GUARDRAILS): Verdict.PASS,
    (L.GREEN, A.MANUAL): Verdict.ASK,  # manual: every result is seen by a person
    (L.YELLOW, A.FULL_AUTO): Verdict.PASS,
    (L.YELLOW, A.GUARDRAILS): Verdict.ASK,
    (L.YELLOW, A.MANUAL): Verdict.ASK,
    (L.RED, A.FULL_AUTO): Verdict.REWORK,
    (L.RED, A.GUARDRAILS): Verdict.REWORK,
    (L.RED, A.MANUAL): Verdict.REWORK,
}
