# Train a linear model of petal width on petal length and save it to model.rds.
model <- lm(Petal.Width ~ Petal.Length, data = iris)
saveRDS(model, "model.rds")
print(coef(model))
