"""Lead files: CSV or TSV, quoted or not, with or without a header, written row by row.

One writer for email attachments, manual downloads and exports. The header lists the
columns given (every flow field, in the flow's order, filled or not); a cell holds the
field's normalized value (``display_fields``). A cell a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-`` or ``@``) gets a leading ``'``.

Rows are written as they come from an iterable, so a long file needs constant memory.
``quote: true`` quotes every cell; ``quote: false`` quotes only the cells that must be
(a delimiter, a quote or a line break inside), so the file always reads back as written.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from shared.fields import to_text
from shared.flowconfig import FileFormat

FORMULA_STARTS = ("=", "+", "-", "@")
DELIMITERS = {"csv": ",", "tsv": "\t"}
MEDIA_TYPES = {"csv": "text/csv", "tsv": "text/tab-separated-values"}

Row = Mapping[str, Any]


class TextSink(Protocol):
    def write(self, text: str, /) -> Any: ...


def neutralize(text: str) -> str:
    """``'`` before a cell that a spreadsheet would run as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cells(columns: Sequence[str], row: Row) -> list[str]:
    return [neutralize(to_text(row.get(column))) for column in columns]


def extension(file: FileFormat) -> str:
    return file.format


def media_type(file: FileFormat) -> str:
    return MEDIA_TYPES[file.format]


def _writer(sink: TextSink, file: FileFormat) -> Any:
    return csv.writer(
        sink,
        delimiter=DELIMITERS[file.format],
        quoting=csv.QUOTE_ALL if file.quote else csv.QUOTE_MINIMAL,
        lineterminator="\r\n",
    )


def write_rows(
    sink: TextSink, columns: Sequence[str], rows: Iterable[Row], file: FileFormat
) -> int:
    """Write the header (when on) and one line per row; returns the number of rows."""
    writer = _writer(sink, file)
    if file.header:
        writer.writerow([neutralize(column) for column in columns])
    count = 0
    for row in rows:
        writer.writerow(cells(columns, row))
        count += 1
    return count
