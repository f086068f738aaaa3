"""One recognizer per entity per file."""
