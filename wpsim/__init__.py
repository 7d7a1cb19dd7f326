"""wpsim: simulate and model wavefront execution of recurrent neural networks."""

__version__ = "0.1.0"
