"""The model libraries pgml_trigger knows besides scikit-learn, in the order their frameworks claim models.

Each has a module in uploader/frameworks/ of the same name, and `pgml-trigger install --with` may put it
into the server's environment. A plain tuple here, so that the installer reads it without importing
numpy or any model library.
"""

MODEL_LIBRARIES = ("xgboost", "lightgbm", "catboost")
