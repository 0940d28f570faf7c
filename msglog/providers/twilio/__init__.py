"""The twilio provider."""
