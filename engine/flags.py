"""An evaluation's flags in words. The evaluator raises them by name
(`tests_modified: tests/test_vat.py`, `for_a_person`); a person reads
them in the event log, the headless output, the step panel and the
approval dialog, all through `flag_text`."""

from __future__ import annotations

# A verifier that gave no verdict (its tool is not installed, the judge
# failed) is flagged `no_verdict: NAME`, one flag per verifier; the name is
# also the key in that result's details.
NO_VERDICT = "no_verdict"

# A flag not here is shown as it is.
FLAG_WORDS: dict[str, str] = {
    "tests_modified": "tests changed",
    "verifier_config_modified": "verifier configuration changed",
    "verifier_error": "verifier error",
    "no_verifiers": "no verifier ran",
    "no_weighted_verifiers": "no verifier carries weight",
    "for_a_person": "for a person to decide",
    NO_VERDICT: "no verdict",
}


def flag_text(flag: str) -> str:
    """`tests_modified: a.py` -> `tests changed: a.py`."""
    name, colon, rest = flag.partition(": ")
    return FLAG_WORDS.get(name, name) + colon + rest
