"""Helpers more than one test module uses: fakes, app builders, worker processes."""
