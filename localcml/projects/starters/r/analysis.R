# A first look at the iris data set: its size, and the mean of each measurement per species.
cat(nrow(iris), "flowers\n")
print(aggregate(. ~ Species, data = iris, FUN = mean))
