"""dicepipe: data engine for DICEPTION-style generalist perception models."""

__version__ = "0.1.0"
