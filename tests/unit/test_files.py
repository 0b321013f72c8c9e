"""Lead files: CSV or TSV, quoted or not, header or not, formulas neutralized, streamed."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from shared.flowconfig import FileFormat, Flow
from shared.formats.files import neutralize, write_rows
from shared.leaddata import build_fields, display_fields

COLUMNS = ["first_name", "phone_1", "email", "state", "postal_code"]


def written(rows: list[dict[str, Any]], **options: Any) -> str:
    out = io.StringIO(newline="")
    write_rows(out, COLUMNS, rows, FileFormat(**options))
    return out.getvalue()


def test_a_quoted_csv_quotes_every_field_and_has_a_header_of_every_column() -> None:
    # given one lead with two fields filled
    rows = [{"first_name": "Ann", "phone_1": "5125551212"}]

    # when it is written with the defaults (csv, quoted, header)
    text = written(rows)

    # then every cell is quoted, empty fields included, and lines end in CRLF
    assert text == (
        '"first_name","phone_1","email","state","postal_code"\r\n"Ann","5125551212","","",""\r\n'
    )


def test_an_unquoted_csv_quotes_only_the_cells_that_need_it() -> None:
    # given values with a comma, a quote and a line break inside
    rows = [{"first_name": "Lee, Ann", "phone_1": 'say "hi"', "email": "a\nb", "state": "TX"}]

    # when it is written without quoting
    text = written(rows, quote=False)

    # then plain cells are bare and the others are quoted so the file reads back as written
    assert text.splitlines()[1].startswith('"Lee, Ann","say ""hi""","a')
    assert ",TX," in text
    assert list(csv.reader(io.StringIO(text, newline="")))[1] == [
        "Lee, Ann",
        'say "hi"',
        "a\nb",
        "TX",
        "",
    ]


def test_a_file_without_header_has_only_the_lead_rows() -> None:
    text = written([{"first_name": "Ann"}, {"first_name": "Bob"}], header=False, quote=False)

    assert text == "Ann,,,,\r\nBob,,,,\r\n"


def test_a_tsv_separates_fields_with_tabs() -> None:
    text = written([{"first_name": "Ann", "state": "TX"}], format="tsv", quote=False)

    assert text == "first_name\tphone_1\temail\tstate\tpostal_code\r\nAnn\t\t\tTX\t\r\n"


def test_a_quoted_tsv_quotes_every_field() -> None:
    text = written([{"first_name": "Ann"}], format="tsv", header=False)

    assert text == '"Ann"\t""\t""\t""\t""\r\n'


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1 512 555 1212", "'+1 512 555 1212"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("a=b", "a=b"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_as_a_formula_gets_a_leading_quote(
    value: str, cell: str
) -> None:
    # when a lead's field starts like a formula
    text = written([{"first_name": value}], header=False, quote=False)

    # then the cell starts with ' so the spreadsheet shows it as text
    assert neutralize(value) == cell
    assert next(csv.reader(io.StringIO(text, newline="")))[0] == cell


def test_the_header_lists_every_flow_field_in_order_even_when_no_lead_filled_it() -> None:
    # given a flow whose optional fields nobody filled, and a required one
    flow = Flow.model_validate(
        {
            "fields": {
                "first_name": {"type": "first_name"},
                "phone_1": {"type": "phone", "required": True},
                "mortgage.loan.amount": {"type": "number"},
                "comments": {"type": "string"},
            }
        }
    )
    lead = display_fields(build_fields(flow, {"phone_1": "(512) 555-1212", "junk": "x"}))

    # when the lead is written under the flow's fields
    out = io.StringIO(newline="")
    write_rows(out, list(flow.fields), [lead], FileFormat(quote=False))

    # then the header has every field in the flow's order, values normalized, extras left out
    header, row = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert header == ["first_name", "phone_1", "mortgage.loan.amount", "comments"]
    assert row == ["", "5125551212", "", ""]


def test_values_are_written_in_their_normal_form_and_invalid_ones_as_submitted() -> None:
    flow = Flow.model_validate(
        {
            "fields": {
                "amount": {"type": "number"},
                "ok": {"type": "boolean"},
                "bad": {"type": "email"},
            }
        }
    )
    lead = display_fields(build_fields(flow, {"amount": "$100,000.00", "ok": "yes", "bad": "nope"}))

    text = written_with(["amount", "ok", "bad"], [lead])

    assert text == "100000,true,nope\r\n"


def written_with(columns: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO(newline="")
    write_rows(out, columns, rows, FileFormat(quote=False, header=False))
    return out.getvalue()


class SinkFull(Exception):
    """The sink took all the lines it would."""


class StoppingSink:
    """A sink that keeps the lines it is given and stops the writer after ``room`` of them."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.lines: list[str] = []

    def write(self, text: str, /) -> int:
        if len(self.lines) == self.room:
            raise SinkFull
        self.lines.append(text)
        return len(text)


def test_rows_are_written_one_at_a_time_so_an_endless_source_can_be_streamed() -> None:
    # given a sink that stops after the header and two rows, and a source of leads that
    # never ends and fails when asked for a row before the previous ones were written
    sink = StoppingSink(room=3)
    taken = 0

    def endless() -> Iterator[dict[str, Any]]:
        nonlocal taken
        for n in itertools.count():
            assert len(sink.lines) == 1 + n, "a row was read before the previous one was written"
            taken += 1
            yield {"first_name": f"Lead {n}"}

    # when the source is written to the sink
    with pytest.raises(SinkFull):
        write_rows(sink, COLUMNS, endless(), FileFormat(quote=False))

    # then each row went to the sink as a whole line as it came, and the source gave only
    # the rows written and the one the sink refused
    assert sink.lines == [
        "first_name,phone_1,email,state,postal_code\r\n",
        "Lead 0,,,,\r\n",
        "Lead 1,,,,\r\n",
    ]
    assert taken == 3


def test_write_rows_returns_the_number_of_leads_not_counting_the_header() -> None:
    out = io.StringIO()
    assert write_rows(out, COLUMNS, iter([{}, {}]), FileFormat()) == 2
    assert write_rows(io.StringIO(), COLUMNS, iter([]), FileFormat()) == 0
