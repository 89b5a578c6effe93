"""croupier-campaign's reading and writing, without a router."""

from __future__ import annotations

import pytest

from croupier.scripts.campaign import (OUTPUT_COLUMNS, Row, Summary, UsageError, context_columns, done_customers,
                                       find_target, main, output_row, parse_maps, read_customers)


def test_maps_name_a_context_field_and_a_column_of_the_csv():
    assert parse_maps(["region=country", "phone=device"]) == {"region": "country", "phone": "device"}
    with pytest.raises(UsageError, match="'planet' is not a context field"):
        parse_maps(["region=planet"])
    with pytest.raises(UsageError, match="must be column=field"):
        parse_maps(["region"])
    with pytest.raises(UsageError, match="no column 'zone'"):
        context_columns(["customer_id", "country"], {"zone": "city"})


def test_columns_named_like_context_fields_are_the_context(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("customer_id,country,region,name\nc1,FR,paris,Ann\nc2,,lyon,Bob\n")
    rows, ignored = read_customers(path, {"region": "city"})
    assert rows == [Row(2, "c1", {"country": "FR", "city": "paris"}), Row(3, "c2", {"city": "lyon"})]
    assert ignored == ["name"]
    assert rows[0].line() == '{"customer_id":"c1","context":{"country":"FR","city":"paris"}}\n'


def test_a_list_without_customer_id_is_refused_naming_its_columns(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("id,country\n1,fr\n")
    with pytest.raises(UsageError, match="no 'customer_id' column \\(its columns: id, country\\)"):
        read_customers(path, {})


def test_an_earlier_output_gives_the_customers_to_skip(tmp_path):
    out = tmp_path / "out.csv"
    assert done_customers(out) == set()
    out.write_text(",".join(OUTPUT_COLUMNS) + "\nc1,a,{},0.5,t,new,\nc2,,,,,,bad\n")
    assert done_customers(out) == {"c1", "c2"}
    out.write_text("something,else\n1,2\n")
    with pytest.raises(UsageError, match="not an output of croupier-campaign"):
        done_customers(out)


def test_output_rows_and_errors():
    row = Row(7, "c1")
    line, error = output_row(row, {"customer_id": "c1", "variant": "b", "params": {"x": 1}, "propensity": 0.25,
                                   "token": "tok", "reason": "new"})
    assert (line, error) == (["c1", "b", '{"x":1}', "0.25", "tok", "new", ""], None)
    line, error = output_row(Row(9, "bad id"), {"line": 3, "field": "customer_id",
                                                "error": "customer_id: must be 1-128 letters"})
    assert line[1] == "" and line[-1] == "customer_id: must be 1-128 letters"
    assert error == "row 9 (bad id): customer_id: must be 1-128 letters"


def test_summary_counts_variants_reasons_and_errors():
    summary = Summary()
    summary.variants.update({"a": 3, "b": 1})
    summary.reasons.update({"new": 3, "returning": 1})
    summary.errors.append("row 5 (x): customer_id: bad")
    text = "\n".join(summary.lines())
    assert "assigned 4 customer(s)" in text and "75.0%" in text and "new 3, returning 1" in text
    assert "1 row(s) not assigned" in text and "row 5 (x)" in text


def test_the_key_comes_from_the_option_the_environment_or_the_stack(tmp_path):
    assert find_target("http://r:1", "k" * 24, tmp_path, {}).api_key == "k" * 24
    env = {"CROUPIER_URL": "http://r:2/", "CROUPIER_API_KEY": "e" * 24}
    assert find_target(None, None, tmp_path, env) == find_target(None, None, tmp_path, env)
    assert find_target(None, None, tmp_path, env).url == "http://r:2"
    with pytest.raises(UsageError, match="no API key: pass --api-key"):
        find_target(None, None, tmp_path, {})


def test_usage_errors_exit_2_and_name_the_option(tmp_path, capsys):
    path = tmp_path / "list.csv"
    path.write_text("customer_id\nc1\n")
    code = main(["assign", str(path), "--experiment", "x", "--out", str(tmp_path / "o.csv"), "--map", "a=planet",
                 "--api-key", "k" * 24, "--url", "http://127.0.0.1:9", "--stack-dir", str(tmp_path)])
    assert code == 2 and "--map 'a=planet'" in capsys.readouterr().err
