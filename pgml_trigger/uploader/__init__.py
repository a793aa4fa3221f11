"""Uploading: a fitted model becomes a version in the database.

upload.py runs the steps (read the source, describe, build the payloads, check, store); describe.py
reads task, classes and features off a model; compile.py converts it to ONNX where the graph agrees
with the model; linear.py folds linear models into SQL arithmetic for triggers; mlflow_source.py reads
MLflow models; frameworks/ holds one module per model library behind one interface.
"""
