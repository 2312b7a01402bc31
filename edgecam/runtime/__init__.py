"""The run loop and its stages: source → preprocess → backend → prediction → sinks."""
