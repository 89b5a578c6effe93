"""Parsing a customer list (pure): line numbers, per-line errors naming the field, chunks."""

from __future__ import annotations

from croupier.router.batch_input import MAX_LINE, Line, LineError, chunks, parse_line, parse_lines
from croupier.router.context import Context


def test_good_lines_parse_alike_whether_the_chunk_parses_whole_or_line_by_line():
    good = [b'{"customer_id": "c1"}', b'{"customer_id": 42, "context": {"country": "FR", "device": "Mobile"}}']
    expected = [Line(1, "c1"), Line(2, "42", Context(country="fr", device="mobile"))]
    assert parse_lines(good) == expected
    assert parse_lines(good + [b"{oops"]) == expected + [LineError(3, None, "line 3: not valid JSON")]


def test_blank_lines_are_skipped_but_counted():
    parsed = parse_lines(["", '{"customer_id": "a"}', "   ", '{"customer_id": "b"}'], first=11)
    assert [(p.number, p.customer) for p in parsed] == [(12, "a"), (14, "b")]


def test_each_error_names_its_line_and_field():
    assert parse_line(3, '{"customer_id": "a b"}').field == "customer_id"
    assert parse_line(3, '{"customer_id": true}').message.startswith("customer_id: must be")
    assert parse_line(4, '{"context": {}}') == LineError(4, "customer_id", "customer_id: is required")
    assert parse_line(5, '{"customer_id": "a", "email": "x"}').field == "email"
    assert parse_line(6, '[1, 2]') == LineError(6, None, "line 6: must be a JSON object")
    assert parse_line(7, '{"customer_id": "a", "context": {"planet": "mars"}}').field == "context"
    assert parse_line(8, '{"customer_id": "a", "context": "fr"}').message == "context: must be a JSON object"
    assert parse_line(9, "x" * (MAX_LINE + 1)).message == f"line 9: longer than {MAX_LINE} bytes"
    # two values on one line never shift the numbering of the others
    parsed = parse_lines([b'{"customer_id": "a"}, {"customer_id": "b"}', b'{"customer_id": "c"}'])
    assert [p.number for p in parsed] == [1, 2] and isinstance(parsed[0], LineError)


def test_a_body_comes_in_numbered_chunks():
    body = b"".join(b'{"customer_id": "c%d"}\n' % i for i in range(5))
    assert [(first, len(lines)) for first, lines in chunks(body, size=2)] == [(1, 2), (3, 2), (5, 1)]
