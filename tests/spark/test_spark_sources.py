"""``data.*.kind: spark``: training and label data from a Spark SQL query or table through a named data connection."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from monitoring.config.data import SparkSource
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.data.sources import load_dataset
from monitoring.domain.data.sources.spark_tables import spark_chunks
from tests.domain.support import model_spec

#: pyspark 3.5 leaves the sockets it collects results through to the garbage collector.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

SPEC = model_spec(
    features=["signal", {"name": "band", "kind": "categorical"}], label={"name": "label", "classes": ["no", "yes"]}
)


@pytest.fixture(scope="module")
def towers(lake):
    workspace, spark = lake
    spark.sql("CREATE DATABASE IF NOT EXISTS telco_mlops")
    rows = [
        (
            i,
            float(i) / 10,
            "ab"[i % 2],
            "yes" if i % 3 == 0 else "no",
            datetime(2026, 1, 1 + i // 10, i % 10, tzinfo=timezone.utc),
        )
        for i in range(40)
    ]
    frame = spark.createDataFrame(rows, "id INT, signal DOUBLE, band STRING, label STRING, event_time TIMESTAMP")
    frame.write.mode("overwrite").saveAsTable("telco_mlops.towers")
    return spark


@pytest.mark.spark
def test_training_data_from_a_spark_query_and_from_a_table(towers, tmp_path):
    query = SparkSource(
        kind="spark",
        connection="local-spark",
        query="SELECT * FROM telco_mlops.towers WHERE id < 30",
        time_column="event_time",
    )
    frame = load_dataset(query, SPEC, tmp_path, "data.training")
    assert len(frame) == 30
    assert list(frame["label"].value_counts().sort_index()) == [20, 10]
    assert frame["start_ms"].is_monotonic_increasing
    table = SparkSource(
        kind="spark",
        connection="local-spark",
        table="telco_mlops.towers",
        since="2026-01-03T00:00:00Z",
        time_column="event_time",
    )
    assert len(load_dataset(table, SPEC, tmp_path, "data.retraining.source")) == 20


@pytest.mark.spark
def test_a_missing_table_a_missing_column_and_an_undefined_connection_each_name_themselves(towers, tmp_path):
    with pytest.raises(
        DataError,
        match=r"data.training \(spark local-spark: telco_mlops.nope\): the Spark query on data connection 'local-spark' failed .*nope",
    ):
        load_dataset(
            SparkSource(kind="spark", connection="local-spark", table="telco_mlops.nope"),
            SPEC,
            tmp_path,
            "data.training",
        )
    with pytest.raises(DataError, match=r"failed .*colour"):
        load_dataset(
            SparkSource(kind="spark", connection="local-spark", query="SELECT colour FROM telco_mlops.towers"),
            SPEC,
            tmp_path,
            "data.training",
        )
    without_band = SparkSource(
        kind="spark", connection="local-spark", query="SELECT id, signal, label FROM telco_mlops.towers"
    )
    with pytest.raises(DataError, match="band"):
        load_dataset(without_band, SPEC, tmp_path, "data.training")
    with pytest.raises(
        ConfigError,
        match=r"data.training.connection: data connection 'nowhere-dl' cannot be opened .*defined: local-spark",
    ):
        load_dataset(
            SparkSource(kind="spark", connection="nowhere-dl", table="telco_mlops.towers"),
            SPEC,
            tmp_path,
            "data.training",
        )


@pytest.mark.spark
def test_labels_are_read_from_the_watermark_a_chunk_at_a_time(towers):
    table = SparkSource(kind="spark", connection="local-spark", table="telco_mlops.towers", time_column="event_time")
    chunks = list(spark_chunks(table, "ground_truth.source", "ground_truth.source", 7, "2026-01-03T05:00:00.000Z"))
    assert [len(c.frame) for c in chunks] == [7, 7, 1]
    ids = sorted(i for c in chunks for i in c.frame["id"])
    assert ids == list(range(25, 40))
    query = SparkSource(
        kind="spark",
        connection="local-spark",
        time_column="event_time",
        query="SELECT id, label, event_time FROM telco_mlops.towers WHERE event_time >= :watermark",
    )
    bound = datetime(2026, 1, 4, 8, tzinfo=timezone.utc)
    assert sorted(i for c in spark_chunks(query, "gt", "gt", 100, bound) for i in c.frame["id"]) == [38, 39]
    assert chunks[0].locate(2) == "result row 3 of the Spark query"
