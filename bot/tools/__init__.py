"""Build and measurement tools (convert-model, eval, calibrate), not the runtime."""
