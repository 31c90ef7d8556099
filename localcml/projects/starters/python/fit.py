"""Train a linear model of petal width on petal length and save it to model.pkl."""

import pickle

from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression

MODEL_FILE = "model.pkl"


def train() -> LinearRegression:
    data = load_iris().data
    return LinearRegression().fit(data[:, [2]], data[:, 3])  # petal length (cm) -> petal width (cm)


if __name__ == "__main__":
    model = train()
    with open(MODEL_FILE, "wb") as out:
        pickle.dump(model, out)
    print(f"saved {MODEL_FILE}: width = {model.coef_[0]:.3f} * length + {model.intercept_:.3f}")
