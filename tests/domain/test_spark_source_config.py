"""A Spark source in config: one query or one table, and what a machine without pyspark or ``cml.data_v1`` is told."""

from __future__ import annotations

import sys

import pytest

from monitoring.config.data import SparkSource
from monitoring.domain.data.sources.access import source_problems


def test_a_spark_source_names_one_query_or_one_table():
    with pytest.raises(ValueError, match="set exactly one of query"):
        SparkSource(kind="spark", connection="c", query="SELECT 1", table="db.t")
    with pytest.raises(ValueError, match="set exactly one of query"):
        SparkSource(kind="spark", connection="c")
    with pytest.raises(ValueError, match="expected a table name"):
        SparkSource(kind="spark", connection="c", table="db.t; DROP TABLE x")


def test_without_pyspark_or_cml_data_v1_the_config_check_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as an interpreter without them: neither imports
    monkeypatch.setitem(sys.modules, "cml", None)
    problems = source_problems(SparkSource(kind="spark", connection="lake", table="db.t"), tmp_path, "data.training")
    assert any(p.startswith("data.training.kind: spark needs pyspark") for p in problems)
    assert any(p.startswith("data.training.connection: cml.data_v1 is not importable here") for p in problems)


def test_training_retraining_and_labels_accept_a_spark_source():
    from monitoring.config.data import DataConfig, RetrainingData
    from monitoring.config.ground_truth import GroundTruthConfig

    data = DataConfig.model_validate({"training": {"kind": "spark", "connection": "local-spark", "table": "db.towers"}})
    assert isinstance(data.training, SparkSource)
    retraining = RetrainingData.model_validate({"source": {"kind": "spark", "connection": "lake", "query": "SELECT 1"}})
    assert retraining.source.connection == "lake"
    with pytest.raises(ValueError, match="use the :watermark parameter"):
        GroundTruthConfig.model_validate(
            {"source": {"kind": "spark", "connection": "lake", "query": "SELECT * FROM db.labels", "time_column": "t"}}
        )
    labels = {"kind": "spark", "connection": "lake", "table": "db.labels", "time_column": "t"}
    assert GroundTruthConfig.model_validate({"source": labels}).source.table == "db.labels"
