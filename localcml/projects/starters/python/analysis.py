"""A first look at the iris data set: its size, and the mean of each measurement per species."""

from sklearn.datasets import load_iris

iris = load_iris(as_frame=True)
frame = iris.frame
frame["species"] = [iris.target_names[t] for t in iris.target]
print(f"{len(frame)} flowers, {len(iris.feature_names)} measurements each")
print(frame.groupby("species")[iris.feature_names].mean().round(2).to_string())
