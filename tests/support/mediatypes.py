"""Content types a client may send, well-formed or not, for the bad-input tests."""

CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "text/xml",
    "text/plain",
    "application/json; charset=latin-1",
    "multipart/form-data",
    "",
    "x/y; q=",
]
