"""``cml.data_v1`` data connections: a real local Spark over W's warehouse, two jobs in sequence, the Spark settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localcml.core.errors import ConfigError
from localcml.datalake.connections import DEFAULT_CONNECTION, define, defined
from localcml.datalake.settings import parse
from localcml.environment import process_env
from tests.local.support import runs_of, wait_run
from tests.spark.jvm import java_processes_of
from tests.waiting import wait_for

WRITER = textwrap.dedent("""
    import json, os
    import cml.data_v1 as cmldata
    spark = cmldata.get_connection(os.environ["CONNECTION_NAME"]).get_spark_session()
    spark.sql("CREATE DATABASE IF NOT EXISTS telco_mlops")
    rows = [(i, float(i) / 10, "yes" if i % 3 else "no") for i in range(30)]
    spark.createDataFrame(rows, ["id", "signal", "label"]).write.mode("overwrite").saveAsTable("telco_mlops.towers")
    conf = {k: spark.conf.get(k) for k in ("spark.sql.shuffle.partitions", "spark.driver.memory", "spark.master")}
    print("WROTE " + json.dumps(conf))
""")
READER = textwrap.dedent("""
    import os
    import cml.data_v1 as cmldata
    spark = cmldata.get_connection(os.environ["CONNECTION_NAME"]).get_spark_session()
    got = spark.sql("SELECT count(*) AS n, sum(id) AS s FROM SPARK_CATALOG.telco_mlops.towers").collect()[0]
    print(f"READ n={got.n} s={got.s}")
""")


@pytest.mark.spark
def test_two_jobs_in_sequence_share_a_table_through_the_default_connection(ws, api, new_job, project_root):
    (project_root / "scripts" / "lake_write.py").write_text(WRITER)
    (project_root / "scripts" / "lake_read.py").write_text(READER)
    api.set_workspace_spark_default(
        {"workspace_spark_default": "spark.sql.shuffle.partitions 3\n", "is_pushdown": "false"}
    )
    env = {"CONNECTION_NAME": DEFAULT_CONNECTION}
    writer = new_job("lake-write", "scripts/lake_write.py", environment=env)
    reader = new_job("lake-read", "scripts/lake_read.py", environment=env, parent_id=writer.id)
    run = api.create_job_run({}, ws.project_id, writer.id)
    assert wait_run(api, ws.project_id, writer.id, run.id, timeout=300).status == "ENGINE_SUCCEEDED"
    wait_for(lambda: runs_of(api, ws.project_id, reader.id), "the dependent reader job's run", timeout=60)
    child = runs_of(api, ws.project_id, reader.id)[0]
    done = wait_run(api, ws.project_id, reader.id, child.id, timeout=300)
    logs = {p.name: p.read_text() for p in (ws.workspace_dir / "runs").rglob("*.log")}
    text = "\n".join(logs.values())
    assert done.status == "ENGINE_SUCCEEDED", text[-3000:]
    wrote = json.loads(text.split("WROTE ", 1)[1].splitlines()[0])
    assert wrote == {"spark.sql.shuffle.partitions": "3", "spark.driver.memory": "1g", "spark.master": "local[2]"}
    assert "READ n=30 s=435" in text
    lake = ws.workspace_dir / "datalake" / DEFAULT_CONNECTION
    assert (lake / "warehouse" / "telco_mlops.db" / "towers").is_dir() and (lake / "metastore_db").is_dir()
    project_dir = ws.projects.directory(ws.project_id)
    assert not (project_dir / "metastore_db").exists() and not (project_dir / "derby.log").exists()
    assert java_processes_of(ws.workspace_dir) == []


ENGINE = textwrap.dedent("""
    import json
    import cml.data_v1 as cmldata
    out = {}
    try:
        cmldata.get_connection("nowhere-dl")
    except Exception as exc:
        out["unknown"] = [type(exc).__name__, str(exc)]
    conn = cmldata.get_connection("lake-b")
    out["name"] = conn.name
    try:
        conn.get_cursor()
    except NotImplementedError as exc:
        out["cursor"] = str(exc)
    print(json.dumps(out))
""")


def test_connection_names_are_configured_and_an_unknown_or_sql_only_call_says_so(ws, tmp_path):
    define(ws.workspace_dir, ["lake-a", "lake-b"])
    done = subprocess.run(
        [sys.executable, "-c", ENGINE],
        env=process_env(ws.engine_env()),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["unknown"][0] == "UnknownConnection"
    assert (
        "data connection 'nowhere-dl' is not defined" in out["unknown"][1]
        and "defined: lake-a, lake-b" in out["unknown"][1]
    )
    assert out["name"] == "lake-b"
    assert "no get_cursor(): CML's Impala and Hive connections have it" in out["cursor"]
    assert "use get_spark_session()" in out["cursor"]


def test_the_workspace_defines_its_default_connection_and_refuses_bad_names(ws, tmp_path):
    assert [c.name for c in defined(ws.workspace_dir)] == [DEFAULT_CONNECTION]
    assert [c.name for c in defined(tmp_path / "empty")] == [DEFAULT_CONNECTION]  # no file: the default alone
    with pytest.raises(ConfigError, match="data connection name '../up': expected letters"):
        define(tmp_path, ["../up"])
    with pytest.raises(ConfigError, match="'a' is given twice"):
        define(tmp_path, ["a", "a"])


def test_no_workspace_no_connection(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CML_MONITOR_WORKSPACE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "localcml" / "shim")
    code = "import cml.data_v1 as d\ntry:\n    d.get_connection('local-spark')\nexcept Exception as e:\n    print(e)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "no local CML workspace here (CML_MONITOR_WORKSPACE is unset)" in done.stdout, done.stderr


def test_the_spark_add_on_is_listed_and_the_spark_settings_are_served(api):
    addons = api.list_runtime_addons().runtime_addons
    assert [(a.component, a.status) for a in addons] == [("Spark", "AVAILABLE")]
    assert addons[0].identifier.startswith("spark3") and addons[0].identifier.endswith("-local")
    assert api.read_workspace_spark_default("false").workspace_spark_default == ""
    api.set_workspace_spark_default(
        {"workspace_spark_default": "spark.executor.cores=2\n# a comment\n", "is_pushdown": "true"}
    )
    assert api.read_workspace_spark_default("true").workspace_spark_default.startswith("spark.executor.cores=2")
    assert api.read_workspace_spark_default("false").workspace_spark_default == ""
    fixed = parse(api.read_cml_spark_default("false", "false").cml_spark_default)
    assert fixed["spark.master"] == "local[2]" and fixed["spark.sql.catalogImplementation"] == "hive"
    assert fixed["spark.sql.warehouse.dir"].endswith("datalake/local-spark/warehouse")


def test_spark_defaults_text_parses_both_forms():
    assert parse("a.b 1\n# c\n\nd.e=2\nf.g = x y\n") == {"a.b": "1", "d.e": "2", "f.g": "x y"}
