"""Data sources: CSV and Parquet files, SQL (SQLite and PostgreSQL), row selection, and the one schema check."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.config.data import FileSource, SqlSource
from monitoring.config.model_spec import ModelConfig
from monitoring.config.pipeline import load_config, parse_config
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.domain.data.sources import load_dataset, read_table, select_rows
from monitoring.domain.data.sources.schema import conform
from tests.domain import mixed

REPO = Path(__file__).resolve().parents[2]
SPEC = ModelConfig(
    name="churn",
    features=[
        {"name": "tenure", "kind": "numeric"},
        {"name": "TotalCharges", "kind": "numeric"},
        {"name": "Contract", "kind": "categorical"},
        {"name": "SeniorCitizen", "kind": "categorical"},
    ],
    label={"name": "Churn", "classes": ["No", "Yes"], "mapping": {"no": "No", "yes": "Yes", "0": "No", "1": "Yes"}},
)
CSV = """customerID,tenure,TotalCharges,Contract,SeniorCitizen,Churn,signup
a,1,29.85,Month-to-month,0,No,2026-01-03
b,34,1889.5,One year,0,yes,2026-01-01
c,2, ,Month-to-month,1,Yes,2026-01-02T12:00:00Z
d,45,1840.75,One year,0,1,2026-01-05
e,0,,Two year,1,No,2026-01-04
"""


def csv_source(**extra) -> FileSource:
    return FileSource(kind="csv", path="data/*.csv", **extra)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part1.csv").write_text(CSV)
    return tmp_path


def test_csv_rows_are_typed_by_kind_and_labels_mapped(project):
    frame = load_dataset(csv_source(), SPEC, project, "data.training")
    assert list(frame.columns) == ["tenure", "TotalCharges", "Contract", "SeniorCitizen", "Churn"]
    assert frame["tenure"].dtype == np.float64 and frame["Contract"].dtype == object
    assert frame["TotalCharges"].isna().tolist() == [False, False, True, False, True]  # blanks are missing
    assert frame["SeniorCitizen"].tolist() == ["0", "0", "1", "0", "1"]
    assert frame["Churn"].tolist() == ["No", "Yes", "Yes", "Yes", "No"]


def test_glob_reads_every_file_in_name_order_and_selects_by_time(project):
    (project / "data" / "part2.csv").write_text(
        CSV.replace("a,1,", "f,7,").splitlines()[0] + "\nf,7,10,Two year,0,No,2026-01-09\n"
    )
    source = csv_source(time_column="signup", since="2026-01-02", until="2026-01-06")
    frame = load_dataset(source, SPEC, project, "data.training")
    day = 86_400_000
    jan1 = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
    assert frame["start_ms"].tolist() == [jan1 + day + day // 2, jan1 + 2 * day, jan1 + 3 * day, jan1 + 4 * day]
    assert frame["tenure"].tolist() == [2.0, 1.0, 0.0, 45.0]  # in time order; part2's row is after `until`
    window = (jan1 + 2 * day, jan1 + 4 * day)
    assert load_dataset(source, SPEC, project, "x", window_ms=window)["tenure"].tolist() == [1.0, 0.0]


def test_shuffle_and_row_slices_split_one_file_into_disjoint_parts(project):
    first = select_rows(
        read_table(csv_source(shuffle_seed=3, rows="0:3"), project, "a"), csv_source(shuffle_seed=3, rows="0:3")
    )[0]
    rest = select_rows(read_table(csv_source(), project, "b"), csv_source(shuffle_seed=3, rows="3:"))[0]
    ids = first.frame["customerID"].tolist() + rest.frame["customerID"].tolist()
    assert sorted(ids) == ["a", "b", "c", "d", "e"] and len(first.frame) == 3
    assert ids != ["a", "b", "c", "d", "e"]  # shuffled (seeded: the same every time)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace(",Contract,", ",Plan,"), r"has no column 'Contract' \(categorical feature\)"),
        (
            lambda t: t.replace("b,34,1889.5", "b,34,lots"),
            r"column 'TotalCharges' \(numeric feature\) holds 'lots' at row 2 \(line 3\) of data/part1.csv",
        ),
        (
            lambda t: t.replace("d,45,1840.75,One year,0,1", "d,45,1840.75,One year,0,maybe"),
            r"column 'Churn' \(class label\) holds 'maybe' at row 4 \(line 5\) of data/part1.csv: expected one of "
            r"model.label.classes \['No', 'Yes'\] or a key of model.label.mapping",
        ),
    ],
    ids=["missing-feature", "text-in-numeric", "label-outside-mapping"],
)
def test_schema_check_names_source_column_and_first_bad_row(project, edit, message):
    path = project / "data" / "part1.csv"
    path.write_text(edit(CSV))
    with pytest.raises(DataError, match=message) as info:
        load_dataset(csv_source(), SPEC, project, "data.training")
    assert str(info.value).startswith("data.training (csv data/*.csv): ")


def test_bad_time_and_missing_files_are_named(project):
    (project / "data" / "part1.csv").write_text(CSV.replace("2026-01-05", "last tuesday"))
    with pytest.raises(DataError, match=r"column 'signup' \(time_column\) holds 'last tuesday' at row 4"):
        load_dataset(csv_source(time_column="signup"), SPEC, project, "data.training")
    with pytest.raises(DataError, match=r"no file matches 'other/\*.csv'"):
        load_dataset(FileSource(kind="csv", path="other/*.csv"), SPEC, project, "data.training")


def test_a_source_without_rows_names_itself_where_it_was_read_and_the_filter_that_emptied_it(project):
    """Issue 19: no rows (a header-only CSV, a Parquet file with columns only, a filter that keeps
    nothing) ended in '0 labelled rows cannot be split', naming neither the source nor the filter."""
    header = CSV.splitlines()[0] + "\n"
    (project / "data" / "part1.csv").write_text(header)
    with pytest.raises(DataError) as info:
        load_dataset(csv_source(), SPEC, project, "data.training")
    assert str(info.value) == (
        "data.training (csv data/*.csv): data/part1.csv yields no rows "
        "(it has columns customerID, tenure, TotalCharges, Contract, SeniorCitizen, Churn, signup)"
    )
    pd.DataFrame({"tenure": pd.Series([], dtype=float), "Churn": pd.Series([], dtype=str)}).to_parquet(
        project / "data" / "none.parquet"
    )
    with pytest.raises(
        DataError,
        match=r"^data.retraining.source \(parquet data/none.parquet\): data/none.parquet "
        r"yields no rows \(it has columns tenure, Churn\)$",
    ):
        load_dataset(FileSource(kind="parquet", path="data/none.parquet"), SPEC, project, "data.retraining.source")

    (project / "data" / "part1.csv").write_text(CSV)
    (project / "data" / "part2.csv").write_text(CSV.replace("\na,", "\nz,"))
    source = csv_source(time_column="signup", since="2026-02-01", until="2026-03-01")
    with pytest.raises(DataError) as info:
        load_dataset(source, SPEC, project, "data.training")
    assert str(info.value) == (
        "data.training (csv data/*.csv): no row is left after since 2026-02-01T00:00:00Z and until "
        "2026-03-01T00:00:00Z (10 rows read, 'signup' from 2026-01-01T00:00:00Z to 2026-01-05T00:00:00Z, "
        "from 2 files (data/part1.csv, data/part2.csv))"
    )
    jan = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
    with pytest.raises(
        DataError,
        match=r"no row is left after since 2026-02-01T00:00:00Z and until "
        r"2026-03-01T00:00:00Z and the lookback \[2025-12-01T00:00:00Z, 2026-01-01T00:00:00Z\)",
    ):
        load_dataset(source, SPEC, project, "data.retraining.source", window_ms=(jan - 31 * 86_400_000, jan))
    with pytest.raises(DataError, match=r"no row is left after rows '20:' \(10 rows read from 2 files"):
        load_dataset(csv_source(rows="20:"), SPEC, project, "data.training")

    unlabelled = "\n".join(line.rsplit(",", 2)[0] + ",," + line.rsplit(",", 1)[1] for line in CSV.splitlines()[1:])
    (project / "data" / "part2.csv").unlink()
    (project / "data" / "part1.csv").write_text(header + unlabelled + "\n")
    with pytest.raises(
        DataError,
        match=r"^data.training \(csv data/\*.csv\): none of the 5 rows selected from "
        r"data/part1.csv has a label in column 'Churn'$",
    ):
        load_dataset(csv_source(), SPEC, project, "data.training")


def test_a_query_that_yields_no_rows_names_its_url_without_the_password_and_its_filter(project, tmp_path):
    frame = pd.read_csv(project / "data" / "part1.csv", dtype=str, keep_default_na=False)
    _write_sqlite(project / "data" / "crm.db", frame)
    source = SqlSource(kind="sql", url="sqlite:///data/crm.db", query="SELECT * FROM customers WHERE 1 = 0")
    with pytest.raises(DataError) as info:
        load_dataset(source, SPEC, project, "data.training")
    assert str(info.value).startswith(
        f"data.training (sql sqlite:///data/crm.db): the query on sqlite:///{project}/data/crm.db yields no rows "
        "(it has columns customerID, tenure,"
    )
    dated = SqlSource(
        kind="sql", url_env="CRM_DB_URL", query="SELECT * FROM customers", time_column="signup", until="2025-06-01"
    )
    env = {"CRM_DB_URL": f"sqlite:///{project}/data/crm.db"}
    with pytest.raises(
        DataError,
        match=r"^data.training \(sql \$CRM_DB_URL\): no row is left after until "
        r"2025-06-01T00:00:00Z \(5 rows read, 'signup' from 2026-01-01T00:00:00Z to "
        r"2026-01-05T00:00:00Z, from the query on sqlite:///.*/data/crm.db\)$",
    ):
        load_dataset(dated, SPEC, project, "data.training", env=env)


def test_a_missing_column_lists_the_files_own_columns_only(project):
    """Issue 19: the list held start_ms, a column the pipeline adds, not the user's."""
    (project / "data" / "part1.csv").write_text(CSV.replace(",Contract,", ",Plan,"))
    with pytest.raises(DataError) as info:
        load_dataset(csv_source(time_column="signup"), SPEC, project, "data.training")
    assert str(info.value).endswith(
        "(columns: customerID, tenure, TotalCharges, Plan, SeniorCitizen, Churn, signup)"
    ), str(info.value)


def test_parquet_keeps_its_types(project):
    rng = np.random.default_rng(1)
    spec = mixed.spec(classes=[0, 1])
    frame = mixed.frame(50, rng, spec)
    frame.to_parquet(project / "data" / "rows.parquet")
    got = load_dataset(FileSource(kind="parquet", path="data/rows.parquet"), spec, project, "data.training")
    assert got["target"].dtype == np.int64
    pd.testing.assert_series_equal(got["tenure"], frame["tenure"])
    assert got["internet"].tolist() == [v if isinstance(v, str) else None for v in frame["internet"]]


def _write_sqlite(path: Path, frame: pd.DataFrame) -> None:
    with sqlite3.connect(path) as conn:
        frame.to_sql("customers", conn, index=False)


def test_sql_on_sqlite_inside_the_project(project):
    frame = pd.read_csv(project / "data" / "part1.csv", dtype=str, keep_default_na=False)
    frame["tenure"] = frame["tenure"].astype(int)
    _write_sqlite(project / "data" / "crm.db", frame)
    source = SqlSource(
        kind="sql", url="sqlite:///data/crm.db", query="SELECT * FROM customers WHERE tenure > :t".replace(":t", "0")
    )
    got = load_dataset(source, SPEC, project, "data.training")
    assert got["tenure"].tolist() == [1.0, 34.0, 2.0, 45.0]
    bad = SqlSource(kind="sql", url="sqlite:///data/crm.db", query="SELECT * FROM nowhere")
    with pytest.raises(
        DataError, match=r"data.training \(sql sqlite:///data/crm.db\): the query on sqlite:///.*crm.db failed"
    ):
        load_dataset(bad, SPEC, project, "data.training")


def test_sql_url_from_an_environment_variable(project):
    source = SqlSource(kind="sql", url_env="CHURN_DB_URL", query="SELECT 1")
    with pytest.raises(ConfigError, match="CHURN_DB_URL is not set"):
        load_dataset(source, SPEC, project, "data.training", env={})


def test_config_keeps_secrets_out_and_paths_inside():
    base = load_config(REPO / "config" / "pipeline.yaml").model_dump(mode="json")
    problems = []
    for data in (
        {"training": {"kind": "sql", "url": "postgresql://u:secret@db/x", "query": "SELECT 1"}},
        {"training": {"kind": "csv", "path": "../elsewhere.csv"}},
        {"training": {"kind": "csv", "path": "a.csv", "since": "2026-01-01"}},
        {"training": {"kind": "csv", "path": "a.csv", "rows": "10:5"}},
    ):
        with pytest.raises(ConfigError) as info:
            parse_config({**base, "data": data})
        problems.append(str(info.value))
    assert "url holds a password" in problems[0] and "u:secret@" not in problems[0]
    assert "data.training.path: '../elsewhere.csv' must be a relative path inside the project" in problems[1]
    assert "since/until select rows by time: set time_column too" in problems[2]
    assert "'10:5': the end must be after the start" in problems[3]


def test_synthetic_data_refuses_a_spec_that_is_not_its_own():
    """The silent case of issue 10: the user's 4 feature names on telco data must fail, naming it."""
    base = load_config(REPO / "config" / "pipeline.yaml").model_dump(mode="json")
    base["model"]["features"] = ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"]
    cfg = parse_config(base)
    with pytest.raises(ConfigError, match=r"data.training: the built-in synthetic scenario is telco cell-tower data"):
        TelcoScenario.from_config(cfg)
    assert TelcoScenario.from_config(load_config(REPO / "config" / "pipeline.yaml")).features[0] == "iot_signal_1"


def test_conform_drops_unlabelled_rows_and_keeps_regression_targets_numeric():
    spec = mixed.spec("regression")
    frame = pd.DataFrame(
        {
            "tenure": [1, 2, 3],
            "charges": ["1.5", "", "2"],
            "contract": ["a", None, 3.0],
            "internet": ["x"] * 3,
            "target": [10.0, None, "12.5"],
        }
    )
    got = conform(frame, spec, "test")
    assert got["target"].tolist() == [10.0, 12.5] and got["contract"].tolist() == ["a", "3"]
    with pytest.raises(DataError, match=r"test: column 'target' \(numeric target\) holds 'high' at row 2"):
        conform(frame.assign(target=[1, "high", 2]), spec, "test")


@pytest.mark.postgres
@pytest.mark.slow
def test_sql_on_postgresql(project, new_pg_database):
    import psycopg

    url = new_pg_database("source")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers (tenure INTEGER, total_charges DOUBLE PRECISION, contract TEXT, senior INTEGER, "
            "churn TEXT, signup TIMESTAMPTZ)"
        )
        conn.execute(
            "INSERT INTO customers VALUES (1, 29.85, 'Month-to-month', 0, 'No', '2026-01-03T00:00:00Z'), "
            "(34, NULL, 'One year', 1, 'Yes', '2026-01-01T00:00:00Z'), (5, 12, 'One year', 0, 'No', '2026-02-01')"
        )
    query = (
        'SELECT tenure, total_charges AS "TotalCharges", contract AS "Contract", senior AS "SeniorCitizen", '
        'churn AS "Churn", signup FROM customers'
    )
    source = SqlSource(kind="sql", url_env="CHURN_DB_URL", query=query, time_column="signup", until="2026-01-31")
    got = load_dataset(source, SPEC, project, "data.retraining.source", env={"CHURN_DB_URL": url})
    assert got["tenure"].tolist() == [34.0, 1.0]  # time order, February left out
    assert np.isnan(got["TotalCharges"][0]) and got["SeniorCitizen"].tolist() == ["1", "0"]
    assert got["Churn"].tolist() == ["Yes", "No"]
    assert got["start_ms"].tolist() == [1_767_225_600_000, 1_767_398_400_000]
    wrong = url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(DataError, match=r"the query on postgresql\+psycopg://postgres@127.0.0.1:\d+/no_such_db failed"):
        load_dataset(source, SPEC, project, "data.retraining.source", env={"CHURN_DB_URL": wrong})


NEEDS = {"customer_id": "key", "failed": "label", "closed_at": "event time"}


def _chunks(project, kind: str = "csv", rows: int = 2, skip=lambda mark: False):
    from monitoring.domain.data.sources.chunks import file_chunks

    source = FileSource(kind=kind, path=f"crm/*.{kind}", time_column="closed_at")
    return list(file_chunks(source, project, "ground_truth.source", rows, skip, NEEDS))


def test_a_feed_file_is_never_a_reason_to_stop_the_feed(project):
    """Issue 20: a 0-byte export and an unquoted comma ('Expected 3 fields in line 4, saw 5') stopped every run;
    a file that cannot be read at all is quarantined and the files after it are read."""
    crm = project / "crm"
    crm.mkdir()
    (crm / "a-empty.csv").write_bytes(b"")
    (crm / "b-lines.csv").write_text(
        "\ufeffcustomer_id,failed,closed_at\n"  # a BOM, as spreadsheets write
        "C-1,yes,2026-01-01T10:00:00Z\n"
        '"C-2","no, after a call",2026-01-01T11:00:00Z\n'  # a quoted comma is one field
        "C-3,no,2026,01,01\n"  # an unquoted comma: five fields
        "\n"
        'C-4,"yes\nreally",2026-01-01T12:00:00Z\n'  # a quoted line break: one row over two lines
        "C-5,no,2026-01-01T13:00:00Z\n"
        "C-6,yes\n"  # half-written
    )
    (crm / "c-binary.csv").write_bytes(b"customer_id,failed,closed_at\nC-7,\xff\xfe\x00yes,x\n")
    (crm / "d-columns.csv").write_text("account,outcome,closed_at\nC-8,yes,2026-01-01T10:00:00Z\n")
    (crm / "e-fine.csv").write_text("customer_id,failed,closed_at\nC-9,no,2026-01-01T10:00:00Z\n")
    chunks = _chunks(project)
    assert [c.empty for c in chunks if c.empty] == ["crm/a-empty.csv"]
    lines = [c for c in chunks if c.frame is not None and "customer_id" in c.frame.columns]
    rows = [(r, c.locate(i)) for c in lines for i, r in enumerate(c.frame["customer_id"])]
    assert rows == [
        ("C-1", "row 1 (line 2) of crm/b-lines.csv"),
        ("C-2", "row 2 (line 3) of crm/b-lines.csv"),
        ("C-4", "row 4 (line 6) of crm/b-lines.csv"),
        ("C-5", "row 5 (line 8) of crm/b-lines.csv"),
        ("C-9", "row 1 (line 2) of crm/e-fine.csv"),
    ]
    assert [b for c in chunks for b in c.bad_lines] == [
        ("row 3 (line 4) of crm/b-lines.csv", "expected 3 fields, saw 5", "C-3,no,2026,01,01"),
        ("row 6 (line 9) of crm/b-lines.csv", "expected 3 fields, saw 2", "C-6,yes"),
    ]
    quarantined = {c.finished.path: c.quarantined for c in chunks if c.quarantined}
    assert quarantined["crm/c-binary.csv"].startswith("cannot be read as csv: not UTF-8 text")
    assert quarantined["crm/d-columns.csv"] == (
        "has no column 'customer_id' (key), 'failed' (label); it has ['account', 'outcome', 'closed_at']"
    )
    assert [c.finished.path for c in chunks if c.finished and not c.quarantined] == [
        "crm/b-lines.csv",
        "crm/e-fine.csv",
    ]
    assert _chunks(project, skip=lambda mark: mark.path != "crm/e-fine.csv")[0].frame["customer_id"].tolist() == ["C-9"]


def test_a_parquet_feed_file_that_cannot_be_read_is_quarantined(project):
    crm = project / "crm"
    crm.mkdir()
    pd.DataFrame({"customer_id": ["P-1"], "failed": ["yes"], "closed_at": ["2026-01-01T10:00:00Z"]}).to_parquet(
        crm / "b.parquet"
    )
    (crm / "a.parquet").write_bytes(b"PAR1 this is not a parquet file")
    chunks = _chunks(project, "parquet")
    assert chunks[0].finished.path == "crm/a.parquet" and chunks[0].quarantined.startswith(
        "cannot be read as parquet ("
    )
    assert chunks[1].frame["customer_id"].tolist() == ["P-1"] and chunks[1].locate(0) == "row 1 of crm/b.parquet"
