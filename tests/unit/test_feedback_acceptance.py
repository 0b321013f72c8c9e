"""The acceptance decision for a recipient's feedback: one table of cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.feedback.acceptance import Decision, DeliveryState, Kind, decide, map_reason
from shared.flowconfig import ReturnsFeedback, StepFeedback

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def rules(
    returns: bool = True,
    conversions: bool = True,
    days: float | None = None,
    reasons: list[str] | None = None,
    reason_map: dict[str, str] | None = None,
) -> StepFeedback:
    return StepFeedback.model_validate(
        {
            "returns": {
                "enabled": returns,
                "max_lead_age_days": days,
                "reasons": reasons,
                "reason_map": reason_map or {},
            },
            "conversions": {"enabled": conversions},
        }
    )


def delivered(ago: timedelta = timedelta(hours=1), status: str = "delivered") -> DeliveryState:
    return DeliveryState(status=status, delivered_at=NOW - ago)


@dataclass(frozen=True)
class Case:
    name: str
    rules: StepFeedback | None
    delivery: DeliveryState | None
    kind: Kind
    reason: str | None
    expected: Decision

    def __str__(self) -> str:
        return self.name


def accepted(kind: Kind, reason: str | None) -> Decision:
    return Decision(True, None, reason, "returned" if kind == "return" else "converted")


def refused(refusal: str, reason: str | None) -> Decision:
    return Decision(False, refusal, reason)


CASES = [
    Case("a return of a delivered lead is accepted", rules(), delivered(), "return", "Wrong number",
         accepted("return", "Wrong number")),
    Case("a conversion of a delivered lead is accepted", rules(), delivered(), "conversion", None,
         accepted("conversion", None)),
    Case("an event that is not a recipient step is refused", None, None, "return", "x",
         refused("Event is not a recipient step", "x")),
    Case("returns switched off are refused", rules(returns=False), delivered(), "return", "x",
         refused("Returns are not accepted", "x")),
    Case("conversions switched off are refused", rules(conversions=False), delivered(),
         "conversion", None, refused("Conversions are not accepted", None)),
    Case("a step without a delivery (skipped) is refused", rules(), None, "return", "x",
         refused("Lead was not delivered", "x")),
    Case("a rejected delivery is refused", rules(), delivered(status="rejected"), "return", "x",
         refused("Lead was not delivered", "x")),
    Case("a delivery still retrying is refused", rules(), delivered(status="retrying"),
         "conversion", None, refused("Lead was not delivered", None)),
    Case("a pending manual delivery is refused", rules(), delivered(status="pending"),
         "return", "x", refused("Lead was not delivered", "x")),
    Case("a second return is refused", rules(), delivered(status="returned"), "return", "x",
         refused("Lead was already returned", "x")),
    Case("a conversion of a returned lead is refused", rules(), delivered(status="returned"),
         "conversion", None, refused("Lead was returned and cannot be converted", None)),
    Case("a second conversion is refused", rules(), delivered(status="converted"),
         "conversion", None, refused("Lead was already converted", None)),
    Case("a return of a converted lead is accepted", rules(), delivered(status="converted"),
         "return", "x", accepted("return", "x")),
    Case("a return just inside the limit is accepted", rules(days=7),
         delivered(7 * DAY - timedelta(seconds=1)), "return", "x", accepted("return", "x")),
    Case("a return exactly at the limit is accepted", rules(days=7), delivered(7 * DAY),
         "return", "x", accepted("return", "x")),
    Case("a return just past the limit is refused", rules(days=7),
         delivered(7 * DAY + timedelta(seconds=1)), "return", "x",
         refused("Must provide return within 7 days", "x")),
    Case("a fractional limit is printed as given", rules(days=1.5), delivered(2 * DAY),
         "return", "x", refused("Must provide return within 1.5 days", "x")),
    Case("a limit of 0 days refuses a return delivered this instant", rules(days=0),
         delivered(timedelta(0)), "return", "x",
         refused("Must provide return within 0 days", "x")),
    Case("a limit without a delivery time refuses the return", rules(days=7),
         DeliveryState("delivered", None), "return", "x",
         refused("Must provide return within 7 days", "x")),
    Case("the age limit does not apply to conversions", rules(days=1), delivered(30 * DAY),
         "conversion", None, accepted("conversion", None)),
    Case("a mapped reason is stored in the operator's words",
         rules(reason_map={"wrong #": "Wrong number"}), delivered(), "return", "Wrong #",
         accepted("return", "Wrong number")),
    Case("a listed reason is accepted in the list's spelling",
         rules(reasons=["Wrong number", "Duplicate"]), delivered(), "return", " duplicate ",
         accepted("return", "Duplicate")),
    Case("a reason outside the list is refused", rules(reasons=["Wrong number", "Duplicate"]),
         delivered(), "return", "Too expensive",
         refused("Return reason 'Too expensive' is not one of: Wrong number, Duplicate",
                 "Too expensive")),
    Case("the mapping applies before the list",
         rules(reasons=["Wrong number"], reason_map={"bad phone": "Wrong number"}), delivered(),
         "return", "bad phone", accepted("return", "Wrong number")),
    Case("the list does not apply to conversions", rules(reasons=["Wrong number"]), delivered(),
         "conversion", "Bought a policy", accepted("conversion", "Bought a policy")),
    Case("switched-off returns are refused before the delivery is looked at",
         rules(returns=False), delivered(status="rejected"), "return", "x",
         refused("Returns are not accepted", "x")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_acceptance_decision_follows_the_step_settings_and_the_delivery(case: Case) -> None:
    # given the step's feedback settings and the delivery's state (in the case)
    # when a recipient posts feedback
    decision = decide(case.rules, case.delivery, case.kind, case.reason, NOW)

    # then it is accepted or refused with the expected reason
    assert decision == case.expected


@pytest.mark.parametrize(
    ("reason_map", "given", "expected"),
    [
        ({}, "  Wrong number ", "Wrong number"),
        ({"WRONG #": "Wrong number"}, "wrong #", "Wrong number"),
        ({"dup": "Duplicate"}, "Other", "Other"),
        ({"dup": "Duplicate"}, None, None),
    ],
)
def test_a_reason_is_mapped_ignoring_case_and_surrounding_spaces(
    reason_map: dict[str, str], given: str | None, expected: str | None
) -> None:
    settings = ReturnsFeedback(enabled=True, reason_map=reason_map)
    assert map_reason(settings, given) == expected


def test_a_return_needing_approval_waits_as_return_requested() -> None:
    manual = StepFeedback.model_validate({"returns": {"enabled": True, "approval": "manual"}})
    decision = decide(manual, delivered(), "return", "Bad phone", NOW)
    assert (decision.accepted, decision.status) == (True, "return requested")
    # and while it waits, no other return or conversion of that delivery is taken
    waiting = decide(manual, delivered(status="return requested"), "return", "x", NOW)
    assert waiting.refusal == "A return of this lead waits for a decision"


def test_a_return_past_the_recipients_monthly_share_is_refused() -> None:
    decision = decide(rules(), delivered(), "return", "Bad phone", NOW, over_limit=True)
    assert (decision.accepted, decision.refusal) == (False, "Return limit reached")
