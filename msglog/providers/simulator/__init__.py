"""The simulator provider."""
