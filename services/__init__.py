"""ML system design reference: the platform (common) and one package per microservice."""
