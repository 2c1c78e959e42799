"""callbridge: the worker between a CRM and the is74 AI-assistant calling platform."""
