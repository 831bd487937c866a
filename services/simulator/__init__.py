"""The closed-loop A/B demo: simulated viewers ask for lists, click by their true tastes."""
