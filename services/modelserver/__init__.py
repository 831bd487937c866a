"""The model server: every model of the repository behind the Open Inference Protocol, port 8010."""
