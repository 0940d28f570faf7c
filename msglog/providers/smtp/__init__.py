"""The smtp provider."""
