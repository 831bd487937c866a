"""The demo console: a browser page over the services' public HTTP APIs (port 8060)."""
