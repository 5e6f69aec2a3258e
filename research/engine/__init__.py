"""Pure research logic. No Django imports."""
