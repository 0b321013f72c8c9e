"""Reading a feedback request's body: three formats in, one Feedback or one InvalidFeedback."""

from __future__ import annotations

import pytest

from services.feedback.body import Feedback, InvalidFeedback, read_feedback

XML_RETURN = (
    b'<?xml version="1.0" encoding="utf-8" ?>\n'
    b"<feedback>\n<type>return</type>\n<reason>Wrong number</reason>\n</feedback>"
)
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<feedback><type>return</type><reason>&lol2;</reason></feedback>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feedback><type>return</type><reason>&xxe;</reason></feedback>"""


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", b'{"type": "return", "reason": "Wrong number"}',
         Feedback("return", "Wrong number")),
        ("text/xml", XML_RETURN, Feedback("return", "Wrong number")),
        ("application/xml; charset=utf-8", XML_RETURN, Feedback("return", "Wrong number")),
        ("application/x-www-form-urlencoded", b"type=return&reason=Wrong+number",
         Feedback("return", "Wrong number")),
        ("application/json", b'{"type": "conversion"}', Feedback("conversion", None)),
        ("application/x-www-form-urlencoded", b"type=Conversion&reason=",
         Feedback("conversion", None)),
        ("application/json", b'{"type": " RETURN ", "reason": 42}', Feedback("return", "42")),
    ],
)  # fmt: skip
def test_a_body_in_any_of_the_three_formats_reads_as_feedback(
    content_type: str, body: bytes, expected: Feedback
) -> None:
    assert read_feedback(content_type, body) == expected


@pytest.mark.parametrize(
    ("content_type", "body", "status", "reason_part"),
    [
        (None, b'{"type": "return"}', 415, "Content-Type header is required"),
        ("", b"", 415, "Content-Type header is required"),
        ("text/plain", b"type=return", 415, "unsupported Content-Type 'text/plain'"),
        ("application/json", b"{not json", 400, "invalid JSON"),
        ("application/json", b"[1, 2]", 400, "must be an object"),
        ("text/xml", b"<feedback><type>return</type>", 400, "invalid XML"),
        ("text/xml", BILLION_LAUGHS, 400, "XML refused"),
        ("text/xml", EXTERNAL_ENTITY, 400, "XML refused"),
        ("application/json", b"", 400, "type is required"),
        ("application/json", b'{"reason": "x"}', 400, "type is required"),
        ("application/json", b'{"type": "refund"}', 400, "type must be 'return' or 'conversion'"),
        ("application/json", b'{"type": ["return"]}', 400, "type must be text"),
        ("application/json", b'{"type": "return", "reason": {"a": 1}}', 400,
         "reason must be text"),
        ("application/json", b'{"type": "return"}', 400, "reason is required for a return"),
        ("application/x-www-form-urlencoded", b"type=return&type=return&reason=x", 400,
         "type must be text"),
    ],
)  # fmt: skip
def test_an_unreadable_request_is_one_error_with_its_status(
    content_type: str | None, body: bytes, status: int, reason_part: str
) -> None:
    with pytest.raises(InvalidFeedback) as raised:
        read_feedback(content_type, body)
    assert raised.value.status == status
    assert reason_part in raised.value.reason
