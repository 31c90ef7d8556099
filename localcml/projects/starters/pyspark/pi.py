"""Estimate pi on Spark: the share of random points of the unit square that fall in the quarter circle."""

import random

from pyspark.sql import SparkSession

SAMPLES = 1_000_000

spark = SparkSession.builder.appName("pi").getOrCreate()


def inside(_):
    x, y = random.random(), random.random()
    return x * x + y * y <= 1.0


hits = spark.sparkContext.parallelize(range(SAMPLES), 4).filter(inside).count()
print(f"pi is about {4.0 * hits / SAMPLES:.4f}")
spark.stop()
