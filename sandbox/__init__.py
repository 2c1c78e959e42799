"""A local stand-in for the is74 AI-assistant platform, strict to its documentation."""
