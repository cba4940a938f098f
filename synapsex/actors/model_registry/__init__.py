"""model-registry-service: model catalog with effective-dated prices."""
