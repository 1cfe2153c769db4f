"""One module per task: Config, Preprocessor, build_model, decode, and train/evaluate/predict."""

from seqkit.runtime import load_tensorflow

load_tensorflow()
