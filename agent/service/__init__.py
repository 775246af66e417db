"""The process around the pipeline: the Agent object, scheduler, HTTP endpoint, CLI, publish and the demo."""
