"""The anymail provider."""
