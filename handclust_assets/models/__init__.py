"""Model loading: learned encoders (transformers), MediaPipe tasks, device/dtype selection."""
