"""Log lines (SPEC section 9): JSON lines always carry the keys the SPEC names."""

from __future__ import annotations

import json
import logging

from shared.logs import JsonFormatter


def record(**ids: str) -> logging.LogRecord:
    made = logging.LogRecord("leadflow.test", logging.INFO, __file__, 1, "stored", (), None)
    for key, value in {**ids, "service": "intake"}.items():  # as the service filter sets it
        setattr(made, key, value)
    return made


def test_a_json_line_names_its_lead_and_event() -> None:
    line = json.loads(JsonFormatter().format(record(lead_id="L1", event_id="E1")))
    assert (line["service"], line["msg"], line["lead_id"], line["event_id"]) == (
        "intake",
        "stored",
        "L1",
        "E1",
    )


def test_a_json_line_about_no_lead_still_has_every_key_the_spec_names() -> None:
    line = json.loads(JsonFormatter().format(record()))
    assert {"ts", "level", "service", "msg", "lead_id", "event_id"} <= set(line)
    assert (line["lead_id"], line["event_id"], line["level"]) == (None, None, "info")
