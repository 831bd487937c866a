"""The stream processor: one consumer group per concern, turning events into online features."""
