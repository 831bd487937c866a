"""The platform every service stands on: settings, telemetry, health, feature store, event bus."""
