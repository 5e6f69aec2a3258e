"""REST endpoints of models_ml: decisions (predictions) and the model registry."""
