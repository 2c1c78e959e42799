"""The adapters: the store, the platform client, the broker, settings, logs, metrics, error
reports and liveness. Everything here talks to the outside world; nothing here decides."""
