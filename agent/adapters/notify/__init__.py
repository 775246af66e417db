"""Change notifications from the bucket (GCS → Pub/Sub): they only wake a model's pass; the pass decides."""
