"""A local Spark for the tests of this folder: one data connection in a throwaway workspace directory, one JVM per module.

The JVM is bounded (``local[2]``, 1 GB driver heap) and stopped, and waited for, when the module's
tests end: no JVM outlives them.
"""

from __future__ import annotations

import gc
import sys
import warnings

import pytest

from localcml.datalake.connections import WORKSPACE_ENV, define
from localcml.environment import SHIM_DIR
from tests.spark.jvm import java_processes_of


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """``(workspace_dir, spark)``: ``cml.data_v1`` importable, the ``local-spark`` connection open."""
    workspace = tmp_path_factory.mktemp("lake")
    define(workspace)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(WORKSPACE_ENV, str(workspace))
        mp.syspath_prepend(str(SHIM_DIR))
        import cml.data_v1 as cmldata

        spark = cmldata.get_connection("local-spark").get_spark_session()
        try:
            yield workspace, spark
        finally:
            from localcml.datalake.session import stop_jvm

            stop_jvm()
            with warnings.catch_warnings():  # what pyspark itself leaves open goes now, not in a later test
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
            for name in [m for m in sys.modules if m == "cml" or m.startswith("cml.")]:
                del sys.modules[name]
    assert java_processes_of(workspace) == []
