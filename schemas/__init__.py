"""marshmallow schemas: the CRM contract, the platform payloads, the result events."""
