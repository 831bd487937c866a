"""The designs' shared domain: what each design's stream, service and trainer all import."""
