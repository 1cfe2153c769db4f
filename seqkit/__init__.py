"""seqkit: RNN recipes for sequence problems, from the shell."""

__version__ = "0.1.0"
