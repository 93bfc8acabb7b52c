"""keras-rlnas: reinforcement-learning neural architecture search for Keras 3."""

__version__ = "0.1.0"
