// Estimate pi on Spark: the share of random points of the unit square that fall in the quarter circle.
val samples = 1000000
val hits = spark.sparkContext.parallelize(1 to samples, 4).filter { _ =>
  val x = math.random
  val y = math.random
  x * x + y * y <= 1.0
}.count()
println(f"pi is about ${4.0 * hits / samples}%.4f")
