"""Pure models_ml logic. No Django imports."""
