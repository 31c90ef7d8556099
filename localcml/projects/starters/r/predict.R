# The model function: the petal width predicted for list(petal_length = <cm>).
model <- readRDS("model.rds")

predict_width <- function(args) {
  length <- as.numeric(args$petal_length)
  list(petal_width = unname(predict(model, data.frame(Petal.Length = length))))
}
