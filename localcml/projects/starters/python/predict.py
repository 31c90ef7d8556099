"""The model function: the petal width predicted for ``{"petal_length": <cm>}``.

It loads ``model.pkl`` written by ``fit.py``; a build made before ``fit.py`` ran fits the model
on start instead.
"""

import os
import pickle

from fit import MODEL_FILE, train

if os.path.exists(MODEL_FILE):
    with open(MODEL_FILE, "rb") as source:
        model = pickle.load(source)
else:
    model = train()


def predict(args):
    length = float(args["petal_length"])
    return {"petal_width": round(float(model.predict([[length]])[0]), 4)}
